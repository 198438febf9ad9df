package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// toolInput is a restore tool's standard input; a failed write is marked
// errToolInput, so that the tool's own error is the one reported.
type toolInput struct{ w io.Writer }

func (t toolInput) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		return n, fmt.Errorf("%w: %w", errToolInput, err)
	}
	return n, nil
}

// streamRestore restores a custom or tar archive by streaming it from the
// store through verification and the codec's decoder straight into
// pg_restore --single-transaction: no disk (for manifests with chunk
// sums), and the download overlaps the restore. Every byte pg_restore
// reads has been checked first (see openVerified): a chunk that does not
// match the manifest is never handed on, pg_restore is killed, and its
// transaction rolls back. Holding back only the end of the stream would
// not do: pg_restore ignores what follows its last block, and runs each
// statement as it reads it.
func (e *Engine) streamRestore(ctx context.Context, tools pgtool.Tools, s store.Store, m *Manifest, target string, clean bool, progress ProgressFunc, log *logrus.Entry) (err error) {
	codec, err := parseManifestCodec(m.Codec)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidArchive, m.Name, err)
	}
	stored, err := e.openVerified(ctx, s, m, "restoring", progress)
	if err != nil {
		return err
	}
	defer stored.Close()
	// The first chunk is checked (and decryption reads the archive's
	// header) before the target is touched: a forged archive, or a worker
	// without the identity, fails here.
	if err := stored.prime(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	plain, err := e.enc.decrypt(m, stored)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", m.ArchiveKey, explain(stored, err))
	}
	created, err := e.ensureDatabase(ctx, target, log)
	if err != nil {
		return err
	}
	if created {
		defer func() {
			if err != nil {
				e.dropQuietly(ctx, target, log)
			}
		}()
	}
	spec := m.Format.spec()
	args := []string{"--no-password", "--exit-on-error", "--dbname=" + target, "--format=" + spec.flag, "--single-transaction"}
	if clean {
		args = append(args, "--clean", "--if-exists")
	}
	rctx, kill := context.WithCancel(ctx)
	defer kill()
	cmd := tools.Command(rctx, e.conn.WithDatabase(target), "pg_restore", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("pg_restore: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pg_restore: %w", err)
	}
	child := awaitExit(cmd)
	dec, err := codec.decoder(plain)
	if err == nil {
		limit := streamBudget(m)
		limit.r = dec
		_, err = io.Copy(toolInput{stdin}, limit)
		_ = dec.Close()
	}
	return finishStream(ctx, streamOutcome(stored, err), child, kill, stdin, m.ArchiveKey)
}

// streamOutcome decides what feeding a restore tool came to, with copyErr
// the copy's error: a failed verification (checksum mismatch, or the
// store failing, which a retry may cure) wins over what the decoder made
// of it; a decoder failing on verified bytes means the archive does not
// decompress. After a clean copy the rest of the object is read and
// checked too, since a decoder may stop at the end of its format.
func streamOutcome(stored verifiedStream, copyErr error) error {
	if copyErr == nil {
		if _, err := io.Copy(io.Discard, stored); err != nil {
			return err
		}
		return nil
	}
	if verr := stored.failure(); verr != nil {
		return verr
	}
	if errors.Is(copyErr, errToolInput) || errors.Is(copyErr, ErrInvalidArchive) || errors.Is(copyErr, ErrNoSpace) {
		return copyErr
	}
	return fmt.Errorf("%w: %w", errStreamBroken, copyErr)
}

// finishStream ends a streaming restore once its input is decided: err is
// what feeding pg_restore came to. When pg_restore stopped on its own with
// an error (an object in the way, a refused statement), that error is the
// one reported, with the SQL error that stopped it: the write into its
// closed stdin ("broken pipe") that usually loses the race to notice only
// says it stopped. A checksum mismatch and the task's own end (cancelled,
// timed out) still win, since they explain why pg_restore failed.
func finishStream(ctx context.Context, err error, child *exitWaiter, kill func(), stdin io.Closer, key string) error {
	if err == nil {
		_ = stdin.Close()
		return child.wait()
	}
	if ctx.Err() == nil && !errors.Is(err, ErrChecksumMismatch) {
		var grace time.Duration
		if errors.Is(err, errStreamBroken) || errors.Is(err, errToolInput) {
			// Its input broke ("broken pipe", or "file already closed"
			// once Wait has returned): pg_restore has exited or is about
			// to.
			grace = 5 * time.Second
		}
		if werr := child.failedWithin(grace); werr != nil {
			return werr
		}
	}
	// Kill pg_restore before it sees the end of its input: its single
	// transaction rolls back and the target is as it was.
	kill()
	_ = stdin.Close()
	_ = child.wait()
	if errors.Is(err, errStreamBroken) {
		// The archive is intact, pg_restore did not fail, yet the stream
		// broke: the archive does not decompress.
		return fmt.Errorf("fetch %s: %w: %w", key, ErrUnreadable, err)
	}
	return err
}

// exitWaiter is a started tool whose exit can be awaited more than once.
type exitWaiter struct {
	done chan struct{}
	err  error
}

func awaitExit(cmd *pgtool.Cmd) *exitWaiter {
	w := &exitWaiter{done: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.done)
	}()
	return w
}

// wait returns the tool's exit error once it has exited.
func (w *exitWaiter) wait() error {
	<-w.done
	return w.err
}

// failedWithin returns the tool's exit error if it exits with one within d
// (0: only if it has already), and nil otherwise.
func (w *exitWaiter) failedWithin(d time.Duration) error {
	if d <= 0 {
		select {
		case <-w.done:
			return w.err
		default:
			return nil
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
		return w.err
	case <-t.C:
		return nil
	}
}

// checkStored tells a damaged archive from a failing store once a read of
// it has ended, with copyErr when the reading side failed: a damaged
// archive usually fails to decode before its end, so the rest is read for
// the checksum to name the fault; if that read fails too, the store is
// what failed, and a retry may do. It returns nil when the stored bytes
// are the ones the manifest names.
func checkStored(ctx context.Context, s store.Store, m *Manifest, d *digestReader, copyErr error) error {
	if copyErr != nil {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fetch %s from %s: %w", m.ArchiveKey, s.Name(), err)
		}
		if _, err := io.Copy(io.Discard, d); err != nil {
			return fmt.Errorf("fetch %s from %s: %w", m.ArchiveKey, s.Name(), err)
		}
	}
	if d.Size() != m.SizeBytes || d.Sum() != m.SHA256 {
		return fmt.Errorf("%w: %s in %s is %d bytes with sha256 %s, manifest says %d bytes with sha256 %s",
			ErrChecksumMismatch, m.ArchiveKey, s.Name(), d.Size(), d.Sum(), m.SizeBytes, m.SHA256)
	}
	return nil
}

// errToolInput marks a failed write into pg_restore's standard input.
var errToolInput = errors.New("pg_restore input")

// errStreamBroken: the stored archive matched its checksum, yet streaming
// it into pg_restore failed.
var errStreamBroken = errors.New("restore stream broken")
