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

// holdBack is how much of the end of the archive a streaming restore keeps
// from pg_restore until the checksum of the whole stored archive is known.
// Without the end of its input pg_restore cannot finish, so it cannot
// commit: a mismatch kills it and its single transaction rolls back.
const holdBack = 64 << 10

// tailWriter forwards everything written to it except the last n bytes,
// which it keeps until Release.
type tailWriter struct {
	w   io.Writer
	n   int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.n; over > 0 {
		if _, err := t.w.Write(t.buf[:over]); err != nil {
			return 0, fmt.Errorf("%w: %w", errToolInput, err)
		}
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// release writes the kept tail.
func (t *tailWriter) release() error {
	_, err := t.w.Write(t.buf)
	t.buf = nil
	if err != nil {
		return fmt.Errorf("%w: %w", errToolInput, err)
	}
	return nil
}

// streamRestore restores a custom or tar archive by streaming it from the
// store through the checksum and the codec's decoder straight into
// pg_restore --single-transaction: no disk, and the download overlaps the
// restore. The target is still never changed by an archive whose checksum
// does not match: pg_restore gets the last bytes of its input, without
// which it cannot commit, only once the whole stored archive has been
// hashed; a mismatch kills it, and its transaction rolls back.
func (e *Engine) streamRestore(ctx context.Context, tools pgtool.Tools, s store.Store, m *Manifest, target string, clean bool, progress ProgressFunc, log *logrus.Entry) (err error) {
	codec, err := parseManifestCodec(m.Codec)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidArchive, m.Name, err)
	}
	rc, err := s.Get(ctx, m.ArchiveKey)
	if err != nil {
		return fmt.Errorf("fetch %s from %s: %w", m.ArchiveKey, s.Name(), err)
	}
	defer rc.Close()
	// Decryption reads the archive's header now: a worker without the
	// identity fails here, before the target is touched.
	d := newDigestReader(rc, "restoring", progress)
	plain, err := e.enc.decrypt(m, d)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", m.ArchiveKey, err)
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
		tail := &tailWriter{w: stdin, n: holdBack}
		_, err = io.Copy(tail, dec)
		_ = dec.Close()
		if err == nil {
			err = e.verifyStreamed(ctx, s, m, d, nil)
			if err == nil {
				err = tail.release()
			}
		} else {
			err = e.verifyStreamed(ctx, s, m, d, err)
		}
	} else {
		err = e.verifyStreamed(ctx, s, m, d, err)
	}
	return finishStream(ctx, err, child, kill, stdin, m.ArchiveKey)
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

// verifyStreamed decides a streaming restore's fate once its input is
// read: a copy error may be the store failing (retry), the archive being
// damaged (checksum mismatch) or an archive that matched its checksum yet
// does not decompress; with no copy error, the checksum must match.
func (e *Engine) verifyStreamed(ctx context.Context, s store.Store, m *Manifest, d *digestReader, copyErr error) error {
	if err := checkStored(ctx, s, m, d, copyErr); err != nil {
		return err
	}
	if copyErr != nil {
		return fmt.Errorf("%w: %w", errStreamBroken, copyErr)
	}
	return nil
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
