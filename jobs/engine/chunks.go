package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
)

// ChunkSums let a restore check a stored archive piece by piece before
// any of it reaches pg_restore or psql. A checksum of the whole archive
// is only known at its end, and a restore tool acts on what it has read
// long before that: pg_restore ignores whatever follows its last block
// (so a valid dump followed by padding would commit before the sum is
// known) and runs each statement as it reads it. With one SHA-256 per
// chunk, a chunk is handed on only once its hash matched, so every byte a
// tool acts on is a byte the backup wrote. The manifest's signature
// covers these fields like every other.
type ChunkSums struct {
	// ChunkSize is the length of every chunk but the last (0: a manifest
	// written before chunk sums, restored through WORK_DIR instead).
	ChunkSize int64 `json:"chunk_size,omitempty"`
	// ChunkSHA256 is the hex SHA-256 of each chunk of the stored bytes,
	// in order.
	ChunkSHA256 []string `json:"chunk_sha256,omitempty"`
	// RawSizeBytes is the size of the archive as pg_dump wrote it, before
	// the codec and encryption: what decoding may yield, no more (0:
	// not recorded).
	RawSizeBytes int64 `json:"raw_size_bytes,omitempty"`
}

// DefaultChunkSize is the chunk length new backups record: a restore
// holds at most two chunks in memory (one being checked, one being fed to
// the tool), and the manifest grows by 67 bytes per chunk (about 8 KiB
// per GiB stored). 8 MiB keeps a restore's 16 MiB of buffers well inside
// a worker's default 64 MiB soft memory limit.
const DefaultChunkSize = 8 << 20

// Chunk sizes a restore accepts. The bound matters: a restore allocates
// its buffers from the manifest's chunk size, so an unsigned manifest
// must not be able to ask for gigabytes.
const (
	minChunkSize = 4 << 10
	maxChunkSize = 64 << 20
)

// chunked reports whether the manifest recorded chunk sums.
func (c ChunkSums) chunked() bool { return c.ChunkSize > 0 }

// chunkHasher computes the chunk sums of a stream as it passes.
type chunkHasher struct {
	size int64
	h    hash.Hash
	in   int64
	sums []string
}

func newChunkHasher(size int64) *chunkHasher {
	return &chunkHasher{size: size, h: sha256.New()}
}

func (c *chunkHasher) write(p []byte) {
	for len(p) > 0 {
		n := min(int64(len(p)), c.size-c.in)
		c.h.Write(p[:n])
		c.in += n
		p = p[n:]
		if c.in == c.size {
			c.sums = append(c.sums, hex.EncodeToString(c.h.Sum(nil)))
			c.h.Reset()
			c.in = 0
		}
	}
}

// finish returns the sums, the last (short) chunk included.
func (c *chunkHasher) finish() []string {
	if c.in > 0 {
		c.sums = append(c.sums, hex.EncodeToString(c.h.Sum(nil)))
		c.h.Reset()
		c.in = 0
	}
	return c.sums
}

// checkChunkList refuses a chunk list that cannot describe size bytes
// before anything is read or allocated.
func checkChunkList(key string, c ChunkSums, size int64) error {
	if c.ChunkSize < minChunkSize || c.ChunkSize > maxChunkSize {
		return fmt.Errorf("%w: %s: manifest's chunk size %d is outside %d to %d", ErrChecksumMismatch, key, c.ChunkSize, minChunkSize, maxChunkSize)
	}
	want := (size + c.ChunkSize - 1) / c.ChunkSize
	if size < 0 || int64(len(c.ChunkSHA256)) != want {
		return fmt.Errorf("%w: %s: manifest lists %d chunk sums for %d bytes in chunks of %d (want %d)",
			ErrChecksumMismatch, key, len(c.ChunkSHA256), size, c.ChunkSize, want)
	}
	for i, s := range c.ChunkSHA256 {
		if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: %s: manifest's chunk sum %d is not a SHA-256", ErrChecksumMismatch, key, i)
		}
	}
	return nil
}

// chunkVerifier reads a stored archive chunk by chunk and yields a chunk
// only once its SHA-256 matched the manifest's; after the last chunk it
// also checks that the object ends there. A goroutine reads and checks
// the next chunk while the current one is consumed, so the download
// overlaps the restore; memory is two chunks.
type chunkVerifier struct {
	src   io.ReadCloser
	ready chan []byte
	free  chan []byte
	done  chan struct{}
	wg    sync.WaitGroup
	stop  sync.Once

	buf, cur []byte

	mu  sync.Mutex
	err error
}

// newChunkVerifier starts verifying src (which it closes) against sums.
// storeErr wraps a failing read of the store, so that a store outage stays
// a retryable error and is not taken for tampering.
func newChunkVerifier(src io.ReadCloser, key string, sums ChunkSums, size int64, storeErr func(error) error) (*chunkVerifier, error) {
	if err := checkChunkList(key, sums, size); err != nil {
		_ = src.Close()
		return nil, err
	}
	v := &chunkVerifier{src: src, ready: make(chan []byte), free: make(chan []byte, 2), done: make(chan struct{})}
	v.free <- nil
	v.free <- nil
	v.wg.Add(1)
	go v.run(key, sums, size, storeErr)
	return v, nil
}

func (v *chunkVerifier) run(key string, sums ChunkSums, size int64, storeErr func(error) error) {
	defer v.wg.Done()
	defer close(v.ready)
	var off int64
	for i, want := range sums.ChunkSHA256 {
		var buf []byte
		select {
		case buf = <-v.free:
		case <-v.done:
			return
		}
		n := min(sums.ChunkSize, size-off)
		if int64(cap(buf)) < n {
			buf = make([]byte, sums.ChunkSize)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(v.src, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				v.fail(fmt.Errorf("%w: %s ends within chunk %d, manifest says %d bytes", ErrChecksumMismatch, key, i, size))
			} else {
				v.fail(storeErr(err))
			}
			return
		}
		sum := sha256.Sum256(buf)
		if got := hex.EncodeToString(sum[:]); got != want {
			v.fail(fmt.Errorf("%w: %s chunk %d (bytes %d to %d) has sha256 %s, manifest says %s",
				ErrChecksumMismatch, key, i, off, off+n, got, want))
			return
		}
		off += n
		if i == len(sums.ChunkSHA256)-1 {
			if err := v.checkEnd(key, size, storeErr); err != nil {
				v.fail(err)
				return
			}
		}
		select {
		case v.ready <- buf:
		case <-v.done:
			return
		}
	}
	if len(sums.ChunkSHA256) == 0 {
		if err := v.checkEnd(key, size, storeErr); err != nil {
			v.fail(err)
		}
	}
}

// checkEnd makes sure the object holds nothing after the recorded size:
// the last chunk is not handed on before that is known.
func (v *chunkVerifier) checkEnd(key string, size int64, storeErr func(error) error) error {
	var one [1]byte
	n, err := io.ReadFull(v.src, one[:])
	switch {
	case n > 0:
		return fmt.Errorf("%w: %s holds bytes past the manifest's %d", ErrChecksumMismatch, key, size)
	case errors.Is(err, io.EOF):
		return nil
	default:
		return storeErr(err)
	}
}

func (v *chunkVerifier) fail(err error) {
	v.mu.Lock()
	v.err = err
	v.mu.Unlock()
}

// failure is why verification stopped (nil while it has not).
func (v *chunkVerifier) failure() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

func (v *chunkVerifier) Read(p []byte) (int, error) {
	if err := v.prime(); err != nil {
		return 0, err
	}
	n := copy(p, v.cur)
	v.cur = v.cur[n:]
	return n, nil
}

// prime waits until a verified chunk is at hand, or verification failed,
// or the object ended (io.EOF), without consuming anything. A restore
// primes before it touches the target, so an archive whose first chunk
// does not match never even creates the target database.
func (v *chunkVerifier) prime() error {
	for len(v.cur) == 0 {
		if v.buf != nil {
			v.free <- v.buf // never blocks: two buffers, two slots
			v.buf = nil
		}
		buf, ok := <-v.ready
		if !ok {
			if err := v.failure(); err != nil {
				return err
			}
			return io.EOF
		}
		v.buf, v.cur = buf, buf
	}
	return nil
}

// Close stops the reading goroutine and closes the store's reader.
func (v *chunkVerifier) Close() error {
	v.stop.Do(func() {
		close(v.done)
		// Unblocks a read in progress; the goroutine then sees done.
		_ = v.src.Close()
	})
	v.wg.Wait()
	return nil
}

// decodedLimit fails a decoded stream that yields more than max bytes,
// or, when exact, ends with fewer: max is the archive's raw size from the
// manifest, so a forged archive cannot decompress into more than the
// backup wrote (nor into less, which would hand a tool a short stream).
type decodedLimit struct {
	r     io.Reader
	key   string
	max   int64
	exact bool
	n     int64
}

func (d *decodedLimit) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.n += int64(n)
	if d.n > d.max {
		keep := max(0, n-int(d.n-d.max))
		if !d.exact {
			// No raw size recorded (an older manifest): max is the free
			// space of WORK_DIR.
			return keep, fmt.Errorf("%w: %s decodes to more than the %d bytes WORK_DIR has free", ErrNoSpace, d.key, d.max)
		}
		return keep, fmt.Errorf("%w: %s decodes to more than the manifest's %d bytes", ErrInvalidArchive, d.key, d.max)
	}
	if errors.Is(err, io.EOF) && d.exact && d.n != d.max {
		return n, fmt.Errorf("%w: %s decodes to %d bytes, manifest says %d", ErrInvalidArchive, d.key, d.n, d.max)
	}
	return n, err
}
