package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/autograph/pgbackup/store"
)

// putStream runs the encode and put stages of one archive: src, encoded,
// into key in every target. stopSrc stops whatever produces src (pg_dump,
// pg_dumpall, the bucket walk) and is called once the stores stopped
// reading, before the encode stages, which may be waiting for its output.
// On failure nothing is left under key and the digest is nil.
func (e *Engine) putStream(ctx context.Context, targets []store.Store, key string, src io.Reader, stopSrc func(), phase string, progress ProgressFunc) (*digestReader, error) {
	digest, stopEncode := e.encode(src, phase, progress)
	err := putAll(ctx, targets, key, digest)
	stopSrc()
	stopEncode()
	if err != nil {
		e.removeQuietly(targets, key)
		return nil, err
	}
	return digest, nil
}

// putAll writes one stream to several stores at once, so each byte is read
// from pg_dump once. If any store fails, the others' uploads are aborted
// too (their readers see the error), and the caller removes what finished.
func putAll(ctx context.Context, targets []store.Store, key string, r io.Reader) error {
	if len(targets) == 1 {
		return targets[0].Put(ctx, key, r, nil)
	}
	g, gctx := errgroup.WithContext(ctx)
	writers := make([]io.Writer, len(targets))
	pipes := make([]*io.PipeWriter, len(targets))
	for i, s := range targets {
		pr, pw := io.Pipe()
		writers[i], pipes[i] = pw, pw
		g.Go(func() error {
			err := s.Put(gctx, key, pr, nil)
			if err != nil {
				err = fmt.Errorf("%s: %w", s.Name(), err)
			}
			// Unblock the copier whether or not this store read to the end.
			pr.CloseWithError(errOrStopped(err))
			return err
		})
	}
	g.Go(func() error {
		_, err := io.Copy(io.MultiWriter(writers...), r)
		for _, pw := range pipes {
			pw.CloseWithError(err) // nil: the stores see a clean EOF
		}
		return err
	})
	return g.Wait()
}

var errStopped = errors.New("store stopped reading")

func errOrStopped(err error) error {
	if err == nil {
		return errStopped
	}
	return err
}

// removeQuietly deletes keys from stores after a failure. It must work even
// when the failure was ctx being cancelled, hence its own context.
func (e *Engine) removeQuietly(targets []store.Store, keys ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range targets {
		for _, k := range keys {
			if err := s.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
				e.log.WithError(err).WithField("key", k).Warn("could not remove partial backup object")
			}
		}
	}
}
