package engine

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/autograph/pgbackup/store"
)

// sumsOf are the chunk sums a backup would record for data.
func sumsOf(data []byte, size int64) ChunkSums {
	h := newChunkHasher(size)
	// Odd write sizes, so that chunk boundaries fall inside writes.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1000)
		h.write(rest[:n])
		rest = rest[n:]
	}
	return ChunkSums{ChunkSize: size, ChunkSHA256: h.finish()}
}

// storeFailure is a store whose read fails after some bytes.
type storeFailure struct{ r io.Reader }

var errStoreDown = errors.New("store went away")

func (s storeFailure) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errStoreDown
	}
	return n, err
}

// readVerified reads everything a chunkVerifier hands on: what a restore
// tool would have been given.
func readVerified(t *testing.T, src io.Reader, sums ChunkSums, size int64) ([]byte, error) {
	t.Helper()
	v, err := newChunkVerifier(io.NopCloser(src), "k", sums, size, func(err error) error { return err })
	if err != nil {
		return nil, err
	}
	defer v.Close()
	var got bytes.Buffer
	_, err = io.Copy(&got, v)
	return got.Bytes(), err
}

func TestChunkVerifierHandsOnOnlyVerifiedChunks(t *testing.T) {
	const size = minChunkSize
	data := make([]byte, 5*size+123)
	_, _ = rand.Read(data)
	sums := sumsOf(data, size)
	if len(sums.ChunkSHA256) != 6 {
		t.Fatalf("%d chunk sums for 5 chunks and a bit", len(sums.ChunkSHA256))
	}
	first := sha256.Sum256(data[:size])
	if sums.ChunkSHA256[0] != hex.EncodeToString(first[:]) {
		t.Fatal("first chunk sum is not the SHA-256 of the first chunk")
	}
	tampered := bytes.Clone(data)
	tampered[2*size+size/2] ^= 1 // in the middle of the third chunk
	tests := []struct {
		name     string
		src      io.Reader
		sums     ChunkSums
		wantErr  error
		wantSeen int // bytes handed on before the failure
	}{
		{name: "intact", src: bytes.NewReader(data), sums: sums, wantSeen: len(data)},
		{name: "chunk replaced in the middle", src: bytes.NewReader(tampered), sums: sums, wantErr: ErrChecksumMismatch, wantSeen: 2 * size},
		// The last chunk is held back until the end of the object is
		// known: padding after it is refused before any of it is used.
		{name: "padded", src: io.MultiReader(bytes.NewReader(data), bytes.NewReader(make([]byte, 1<<20))), sums: sums,
			wantErr: ErrChecksumMismatch, wantSeen: 5 * size},
		{name: "one byte more", src: bytes.NewReader(append(bytes.Clone(data), 0)), sums: sums, wantErr: ErrChecksumMismatch, wantSeen: 5 * size},
		{name: "truncated", src: bytes.NewReader(data[:3*size+7]), sums: sums, wantErr: ErrChecksumMismatch, wantSeen: 3 * size},
		{name: "store fails", src: storeFailure{bytes.NewReader(data[:size+5])}, sums: sums, wantErr: errStoreDown, wantSeen: size},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readVerified(t, tc.src, tc.sums, int64(len(data)))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(got) != tc.wantSeen || !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("handed on %d bytes (a prefix of the backup: %v), want the first %d", len(got), bytes.Equal(got, data[:len(got)]), tc.wantSeen)
			}
			if errors.Is(tc.wantErr, errStoreDown) && errors.Is(err, ErrChecksumMismatch) {
				t.Fatal("a failing store was reported as tampering")
			}
		})
	}
}

func TestChunkListMustFitTheArchive(t *testing.T) {
	data := make([]byte, 3*minChunkSize)
	good := sumsOf(data, minChunkSize)
	tests := []struct {
		name string
		sums ChunkSums
	}{
		{"a chunk missing", ChunkSums{ChunkSize: minChunkSize, ChunkSHA256: good.ChunkSHA256[:2]}},
		{"a chunk too many", ChunkSums{ChunkSize: minChunkSize, ChunkSHA256: append(good.ChunkSHA256, good.ChunkSHA256[0])}},
		// A forged manifest must not make the restore allocate gigabytes.
		{"huge chunks", ChunkSums{ChunkSize: 1 << 40, ChunkSHA256: good.ChunkSHA256[:1]}},
		{"tiny chunks", ChunkSums{ChunkSize: 1, ChunkSHA256: good.ChunkSHA256}},
		{"not a sum", ChunkSums{ChunkSize: minChunkSize, ChunkSHA256: []string{"x", "y", "z"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readVerified(t, bytes.NewReader(data), tc.sums, int64(len(data)))
			if !errors.Is(err, ErrChecksumMismatch) || len(got) != 0 {
				t.Fatalf("err = %v with %d bytes handed on, want ErrChecksumMismatch and nothing", err, len(got))
			}
		})
	}
}

// TestDecoderLimits: a forged archive can neither make the zstd decoder
// allocate a huge window nor decompress into more than the raw size the
// manifest records.
func TestDecoderLimits(t *testing.T) {
	zeros := make([]byte, 64<<20)
	var bomb bytes.Buffer
	zw, _ := zstd.NewWriter(&bomb, zstd.WithEncoderLevel(zstd.SpeedFastest))
	_, _ = zw.Write(zeros)
	_ = zw.Close()
	var gz bytes.Buffer
	gw := pgzip.NewWriter(&gz)
	_, _ = gw.Write(zeros)
	_ = gw.Close()
	// A frame that asks for a 256 MiB window (the library's default
	// limit is 512 MiB, per frame and decoding goroutine).
	var wide bytes.Buffer
	ww, err := zstd.NewWriter(&wide, zstd.WithWindowSize(256<<20), zstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = ww.Write(zeros[:1<<20])
	_ = ww.Close()

	const raw = 1 << 20
	tests := []struct {
		name    string
		codec   Codec
		stored  []byte
		wantErr error
	}{
		{"zstd bomb", Codec{Name: CodecZstd, Level: 3}, bomb.Bytes(), ErrInvalidArchive},
		{"gzip bomb", Codec{Name: CodecGzip, Level: 6}, gz.Bytes(), ErrInvalidArchive},
		{"no codec, too long", Codec{}, zeros[:raw+1], ErrInvalidArchive},
		{"no codec, too short", Codec{}, zeros[:raw-1], ErrInvalidArchive},
		{"zstd window too large", Codec{Name: CodecZstd, Level: 3}, wide.Bytes(), zstd.ErrWindowSizeExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := tc.codec.decoder(bytes.NewReader(tc.stored))
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			limit := streamBudget(&Manifest{ArchiveKey: "k", ChunkSums: ChunkSums{RawSizeBytes: raw}})
			limit.r = dec
			n, err := io.Copy(io.Discard, limit)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if n > raw {
				t.Fatalf("%d bytes decoded, more than the %d the manifest allows", n, raw)
			}
		})
	}
	if bomb.Len() > 1<<20 {
		t.Fatalf("the zstd bomb is %d bytes, not a bomb", bomb.Len())
	}
}

func TestChunkSizeOption(t *testing.T) {
	for _, n := range []int64{1, minChunkSize - 1, maxChunkSize + 1} {
		_, err := New(Options{Stores: []store.Store{store.NewMemory("")}, ChunkSize: n})
		if err == nil || !strings.Contains(err.Error(), "chunk size") {
			t.Fatalf("chunk size %d: err = %v, want it refused", n, err)
		}
	}
}
