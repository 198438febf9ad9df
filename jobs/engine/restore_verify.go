package engine

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"syscall"
	"time"

	"github.com/autograph/pgbackup/store"
)

// verifiedStream is a stored archive whose bytes are handed on only once
// they are known to be the backup's.
type verifiedStream interface {
	io.ReadCloser
	// prime waits for the first verified bytes (or the failure).
	prime() error
	// failure is why verification failed, nil when it has not: a reader
	// downstream (decryption, a decoder) may report it in its own words.
	failure() error
}

// openVerified opens m's stored archive as a verifiedStream: chunk by
// chunk against the manifest's chunk sums, or, for a manifest written
// before chunk sums, from a copy in WORK_DIR whose size and SHA-256 were
// checked whole before the first byte is handed on. Either way no byte
// reaches a restore tool unchecked, and a store that changes the object
// between two reads cannot slip anything past: what is checked is what
// is read.
func (e *Engine) openVerified(ctx context.Context, s store.Store, m *Manifest, phase string, progress ProgressFunc) (verifiedStream, error) {
	if !m.chunked() {
		return e.spoolVerified(ctx, s, m, progress)
	}
	rc, err := s.Get(ctx, m.ArchiveKey)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", m.ArchiveKey, s.Name(), err)
	}
	storeErr := func(err error) error { return fmt.Errorf("fetch %s from %s: %w", m.ArchiveKey, s.Name(), err) }
	v, err := newChunkVerifier(&progressReader{r: rc, c: rc, phase: phase, report: progress}, m.ArchiveKey, m.ChunkSums, m.SizeBytes, storeErr)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// spoolVerified copies an archive without chunk sums into WORK_DIR (after
// checking there is room for the size the manifest records, and never
// more than that plus one byte) and checks its size and SHA-256 before
// anything reads it. The copy is removed on Close.
func (e *Engine) spoolVerified(ctx context.Context, s store.Store, m *Manifest, progress ProgressFunc) (_ verifiedStream, err error) {
	if err := e.checkFree(m.SizeBytes, "fetch "+m.ArchiveKey); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(e.workDir, "pgbackup-spool-*")
	if err != nil {
		return nil, fmt.Errorf("fetch %s: work dir: %w", m.ArchiveKey, err)
	}
	sp := &spooled{f: f}
	defer func() {
		if err != nil {
			_ = sp.Close()
		}
	}()
	rc, err := s.Get(ctx, m.ArchiveKey)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", m.ArchiveKey, s.Name(), err)
	}
	report(progress, Progress{Phase: "downloading"})
	d := newDigestReader(io.LimitReader(rc, m.SizeBytes+1), "downloading", progress)
	_, err = io.Copy(f, d)
	_ = rc.Close()
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", m.ArchiveKey, s.Name(), err)
	}
	if err := checkStored(ctx, s, m, d, nil); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", m.ArchiveKey, err)
	}
	return sp, nil
}

// spooled is a verified copy of an archive in WORK_DIR.
type spooled struct{ f *os.File }

func (s *spooled) Read(p []byte) (int, error) { return s.f.Read(p) }
func (s *spooled) prime() error               { return nil }
func (s *spooled) failure() error             { return nil }
func (s *spooled) Close() error {
	err := s.f.Close()
	_ = os.Remove(s.f.Name())
	return err
}

// explain prefers the verification's failure over what a reader
// downstream made of it.
func explain(v verifiedStream, err error) error {
	if verr := v.failure(); verr != nil {
		return verr
	}
	return err
}

// workDirReserve is left free in WORK_DIR by every restore's budget, so
// that one restore cannot leave the worker without room for anything
// else.
const workDirReserve = 64 << 20

// freeBytes is what an unprivileged process may still write under dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("work dir %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// checkFree fails with ErrNoSpace unless WORK_DIR has need bytes free
// beyond its reserve.
func (e *Engine) checkFree(need int64, op string) error {
	free, err := freeBytes(e.workDir)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if need > free-workDirReserve {
		return fmt.Errorf("%s: %w: needs %d bytes, %d free (keeping %d)", op, ErrNoSpace, need, free, int64(workDirReserve))
	}
	return nil
}

// diskBudget bounds what decoding m's archive may write into WORK_DIR:
// the raw size the manifest records (checked against the free space
// first, times copies for a directory archive, which is extracted beside
// its tar), or, for older manifests, the free space itself.
func (e *Engine) diskBudget(m *Manifest, copies int64) (*decodedLimit, error) {
	op := "fetch " + m.ArchiveKey
	if m.RawSizeBytes > 0 {
		if m.RawSizeBytes > math.MaxInt64/copies {
			return nil, fmt.Errorf("%s: %w: raw size %d", op, ErrInvalidArchive, m.RawSizeBytes)
		}
		if err := e.checkFree(m.RawSizeBytes*copies, op); err != nil {
			return nil, err
		}
		return &decodedLimit{key: m.ArchiveKey, max: m.RawSizeBytes, exact: true}, nil
	}
	free, err := freeBytes(e.workDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &decodedLimit{key: m.ArchiveKey, max: max(0, free-workDirReserve)}, nil
}

// streamBudget bounds what decoding m's archive may hand a tool that
// reads it as a stream: the raw size when the manifest records it
// (nothing lands on WORK_DIR, so an older manifest's stream is not
// bounded).
func streamBudget(m *Manifest) *decodedLimit {
	if m.RawSizeBytes > 0 {
		return &decodedLimit{key: m.ArchiveKey, max: m.RawSizeBytes, exact: true}
	}
	return &decodedLimit{key: m.ArchiveKey, max: math.MaxInt64}
}

// progressReader reports the bytes read through it, at most about twice a
// second, and closes c.
type progressReader struct {
	r        io.Reader
	c        io.Closer
	n        int64
	phase    string
	report   ProgressFunc
	lastSent time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.report != nil && n > 0 {
		if now := time.Now(); now.Sub(p.lastSent) >= 500*time.Millisecond {
			p.lastSent = now
			p.report(Progress{Phase: p.phase, Bytes: p.n})
		}
	}
	return n, err
}

func (p *progressReader) Close() error { return p.c.Close() }
