package archiver

import (
	"context"
	"errors"
	"fmt"

	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/wal"
)

// Fence is asked before every write to the archive: nil while this
// archiver still holds its target's lease (coord.HeldLease.Check).
type Fence func(ctx context.Context) error

// Fenced returns a that refuses every write once check fails, so that an
// archiver whose lease moved on writes nothing more. (The check and the
// write are two steps: a store that records the fencing token with each
// object closes the remaining window.)
func Fenced(a wal.Archive, check Fence) wal.Archive { return &fenced{Archive: a, check: check} }

type fenced struct {
	wal.Archive
	check Fence
}

func (f *fenced) PutPartial(ctx context.Context, tli uint32, start wal.LSN, data []byte) error {
	if err := f.check(ctx); err != nil {
		return fmt.Errorf("fenced archive: %w", err)
	}
	return f.Archive.PutPartial(ctx, tli, start, data)
}

func (f *fenced) PutSegment(ctx context.Context, tli uint32, segno uint64, data []byte) error {
	if err := f.check(ctx); err != nil {
		return fmt.Errorf("fenced archive: %w", err)
	}
	return f.Archive.PutSegment(ctx, tli, segno, data)
}

func (f *fenced) PutHistory(ctx context.Context, tli uint32, content []byte) error {
	if err := f.check(ctx); err != nil {
		return fmt.Errorf("fenced archive: %w", err)
	}
	return f.Archive.PutHistory(ctx, tli, content)
}

// RunLeased streams only while holding lease: it waits as a hot standby
// until the lease is free, streams with every archive write fenced by the
// lease, stops writing the moment the lease is lost (a failed renewal or
// another holder's token), and then waits for the lease again. It returns
// nil when ctx ends, or the streamer's error (after releasing the lease,
// so that a standby takes over at once).
func RunLeased(ctx context.Context, lease *coord.ArchiverLease, cfg Config) error {
	log := cfg.Log
	for {
		held, err := lease.Acquire(ctx)
		if err != nil {
			return stopped(ctx, err)
		}
		if log != nil {
			log.WithField("token", held.Token).Info("archiver: lease taken; streaming")
		}
		err = runHeld(ctx, held, cfg)
		rerr := held.Release(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, coord.ErrLeaseLost) {
			if log != nil {
				log.WithField("token", held.Token).Warn("archiver: lease lost; stopped writing, standing by")
			}
			continue
		}
		if err == nil {
			err = errors.New("archiver: streamer stopped")
		}
		return errors.Join(err, rerr)
	}
}

func runHeld(ctx context.Context, held *coord.HeldLease, cfg Config) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-held.Lost():
			cancel()
		case <-sctx.Done():
		}
	}()
	cfg.Archive = Fenced(cfg.Archive, held.Check)
	s, err := New(cfg)
	if err != nil {
		return err
	}
	err = s.Run(sctx)
	select {
	case <-held.Lost():
		return errors.Join(err, fmt.Errorf("archiver: token %d: %w", held.Token, coord.ErrLeaseLost))
	default:
		return err
	}
}
