package engine

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Codec is the compression applied between pg_dump and the stores. With a
// codec, pg_dump runs with -Z0 and the worker compresses in the stream,
// on every core; the archive key gets the codec's extension and the
// manifest records it, so that restore knows how to undo it. The zero
// Codec stores pg_dump's output as it is (COMPRESSION=none, or pg_dump,
// which leaves compression to pg_dump's own -Z as before).
type Codec struct {
	// Name is "zstd", "gzip" or "" (none).
	Name  string
	Level int
	// PgDump keeps pg_dump's own compression (PG_DUMP_COMPRESS) instead.
	PgDump bool
}

// Codec names.
const (
	CodecZstd = "zstd"
	CodecGzip = "gzip"
)

// DefaultCodec is zstd at its default level: faster than pg_dump's gzip
// and smaller (see BENCHMARKS.md).
var DefaultCodec = Codec{Name: CodecZstd, Level: 3}

// ParseCodec reads COMPRESSION: zstd, zstd:<1..19>, gzip, gzip:<1..9>,
// none, or pg_dump.
func ParseCodec(s string) (Codec, error) {
	name, lvl, hasLevel := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	level := func(def, lo, hi int) (int, error) {
		if !hasLevel {
			return def, nil
		}
		n, err := strconv.Atoi(lvl)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("%w: compression level %q: want %d to %d", ErrInvalid, lvl, lo, hi)
		}
		return n, nil
	}
	switch name {
	case "", CodecZstd:
		n, err := level(3, 1, 19)
		return Codec{Name: CodecZstd, Level: n}, err
	case CodecGzip:
		n, err := level(6, 1, 9)
		return Codec{Name: CodecGzip, Level: n}, err
	case "none":
		if hasLevel {
			return Codec{}, fmt.Errorf("%w: compression none takes no level", ErrInvalid)
		}
		return Codec{}, nil
	case "pg_dump":
		if hasLevel {
			return Codec{}, fmt.Errorf("%w: compression pg_dump takes its level from PG_DUMP_COMPRESS", ErrInvalid)
		}
		return Codec{PgDump: true}, nil
	}
	return Codec{}, fmt.Errorf("%w: compression %q: want zstd, zstd:<level>, gzip, gzip:<level>, none or pg_dump", ErrInvalid, s)
}

// String is what the manifest records: "zstd:3", "gzip:6", or "" for none.
func (c Codec) String() string {
	if c.Name == "" {
		return ""
	}
	return c.Name + ":" + strconv.Itoa(c.Level)
}

// parseManifestCodec reads a manifest's codec field.
func parseManifestCodec(s string) (Codec, error) {
	if s == "" {
		return Codec{}, nil
	}
	name, lvl, ok := strings.Cut(s, ":")
	n, err := strconv.Atoi(lvl)
	if !ok || err != nil || (name != CodecZstd && name != CodecGzip) {
		return Codec{}, fmt.Errorf("unknown codec %q", s)
	}
	return Codec{Name: name, Level: n}, nil
}

// Extension is appended to the format's extension.
func (c Codec) Extension() string {
	switch c.Name {
	case CodecZstd:
		return ".zst"
	case CodecGzip:
		return ".gz"
	}
	return ""
}

// encoder returns a writer that compresses into w.
func (c Codec) encoder(w io.Writer) (io.WriteCloser, error) {
	switch c.Name {
	case CodecZstd:
		// One goroutine per core; memory grows with concurrency × window,
		// which at the default levels stays a few MiB per core.
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.Level)),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	case CodecGzip:
		zw, err := pgzip.NewWriterLevel(w, c.Level)
		if err != nil {
			return nil, err
		}
		// 1 MiB blocks, one per core in flight: pgzip's parallelism with a
		// bounded buffer.
		if err := zw.SetConcurrency(1<<20, runtime.GOMAXPROCS(0)); err != nil {
			return nil, err
		}
		return zw, nil
	}
	return nopWriteCloser{w}, nil
}

// maxZstdWindow is the largest zstd window a restore accepts. Our encoder
// uses at most 8 MiB at every level; the library would accept 512 MiB
// per frame (times its concurrency), which a forged archive could ask
// for to exhaust the worker's memory.
const maxZstdWindow = 32 << 20

// decoder returns a reader that decompresses r. Its memory is bounded
// whatever r holds: zstd windows are capped (maxZstdWindow), pgzip reads
// in fixed blocks; how much it may yield is the caller's limit
// (decodedLimit).
func (c Codec) decoder(r io.Reader) (io.ReadCloser, error) {
	switch c.Name {
	case CodecZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderLowmem(false),
			zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case CodecGzip:
		return pgzip.NewReader(r)
	}
	return io.NopCloser(r), nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// encodeStream compresses src in a goroutine (see pipeStage).
func (c Codec) encodeStream(src io.Reader) (io.Reader, func()) {
	if c.Name == "" {
		return src, func() {}
	}
	return pipeStage(src, c.encoder)
}

// errCorrupt wraps decoder failures: the stored bytes matched the checksum
// but do not decompress, so the archive was bad before it was stored.
var errCorrupt = errors.New("archive does not decompress")

// NewEncoder returns a writer that compresses into w with c, for callers
// outside the engine that store objects the same way (the WAL archive).
// Close flushes it.
func (c Codec) NewEncoder(w io.Writer) (io.WriteCloser, error) { return c.encoder(w) }

// NewDecoder undoes NewEncoder, with the same memory bounds as a restore;
// the caller bounds how much it reads.
func (c Codec) NewDecoder(r io.Reader) (io.ReadCloser, error) { return c.decoder(r) }
