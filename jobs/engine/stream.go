package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Progress is reported while a backup or restore runs.
type Progress struct {
	Phase string `json:"phase"`
	Bytes int64  `json:"bytes"`
}

// ProgressFunc receives progress; the engine calls it at most about twice a
// second, plus once per phase change.
type ProgressFunc func(Progress)

// digestReader hashes and counts what passes through it, so the checksum of
// an archive is known the moment the last byte reaches the store, without
// reading it a second time.
type digestReader struct {
	r     io.Reader
	h     hash.Hash
	n     atomic.Int64
	phase string
	// chunks and raw, when set (the encode stage), record the chunk sums
	// and the size of the stream before encoding (see ChunkSums).
	chunks *chunkHasher
	raw    *countReader

	mu       sync.Mutex
	report   ProgressFunc
	lastSent time.Time
}

func newDigestReader(r io.Reader, phase string, report ProgressFunc) *digestReader {
	return &digestReader{r: r, h: sha256.New(), phase: phase, report: report}
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if n > 0 {
		d.h.Write(p[:n])
		if d.chunks != nil {
			d.chunks.write(p[:n])
		}
		total := d.n.Add(int64(n))
		d.maybeReport(total)
	}
	return n, err
}

func (d *digestReader) maybeReport(total int64) {
	if d.report == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if now := time.Now(); now.Sub(d.lastSent) >= 500*time.Millisecond {
		d.lastSent = now
		d.report(Progress{Phase: d.phase, Bytes: total})
	}
}

func (d *digestReader) Sum() string { return hex.EncodeToString(d.h.Sum(nil)) }
func (d *digestReader) Size() int64 { return d.n.Load() }

// Sums are the chunk sums and raw size of a stream read to its end
// through the encode stage; empty for other digests.
func (d *digestReader) Sums() ChunkSums {
	if d.chunks == nil {
		return ChunkSums{}
	}
	return ChunkSums{ChunkSize: d.chunks.size, ChunkSHA256: d.chunks.finish(), RawSizeBytes: d.raw.n.Load()}
}

// countReader counts what is read through it; the count may be read by
// another goroutine.
type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// exitReader turns a child process's stdout into a reader whose EOF is only
// reported if the process also exited cleanly. Otherwise the store would see
// a normal end of stream when pg_dump died half way and would publish a
// truncated archive.
type exitReader struct {
	r    io.Reader
	wait func() error
	done bool
	err  error

	reaped  sync.Once
	waitErr error
}

// reap waits for the process once, whoever asks first: the reader at EOF
// or the cleanup after an early stop. exec.Cmd.Wait must not run twice at
// once (the second call blocks for ever on the first's I/O goroutines).
func (e *exitReader) reap() error {
	e.reaped.Do(func() { e.waitErr = e.wait() })
	return e.waitErr
}

func (e *exitReader) Read(p []byte) (int, error) {
	if e.done {
		return 0, e.err
	}
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.done = true
		e.err = io.EOF
		if werr := e.reap(); werr != nil {
			e.err = werr
		}
		return n, e.err
	}
	return n, err
}
