package wal_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/wal"
	"github.com/autograph/pgbackup/store"
)

// TestMinIORoundTripAndGap runs the archive on the bench's real MinIO, at
// PostgreSQL's default segment size: segments and chunks come back
// verified, and a segment deleted from the bucket is reported as a gap
// with its exact range.
func TestMinIORoundTripAndGap(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	bucket := strings.ReplaceAll(testbench.UniqueName("wal"), "_", "-")
	s, err := store.NewMinIO(ctx, store.MinIOConfig{
		Endpoint: env.MinIOEndpoint, AccessKey: env.MinIOUser, SecretKey: env.MinIOPassword,
		Bucket: bucket, PartSize: store.MinPartSize, UploadThreads: 2,
	})
	if err != nil {
		t.Fatalf("NewMinIO: %v", err)
	}
	f := newFixture(t, s)
	f.opts.SegmentSize = wal.DefaultSegmentSize
	a := mustNew(t, f.opts)
	const size = wal.DefaultSegmentSize
	segs := map[uint64][]byte{}
	for _, n := range []uint64{1, 2, 3} {
		segs[n] = randomBytes(t, size)
		if err := a.PutSegment(ctx, 1, n, segs[n]); err != nil {
			t.Fatalf("PutSegment %d: %v", n, err)
		}
	}
	open := wal.LSN(4 * size)
	c1, c2 := randomBytes(t, 8192), randomBytes(t, 100)
	for _, c := range []struct {
		at   wal.LSN
		data []byte
	}{{open, c1}, {open + 8192, c2}} {
		if err := a.PutPartial(ctx, 1, c.at, c.data); err != nil {
			t.Fatalf("PutPartial: %v", err)
		}
	}
	if got, want := mustEnd(t, a), (wal.Position{Timeline: 1, LSN: open + 8292}); got != want {
		t.Fatalf("End = %+v, want %+v", got, want)
	}
	for n, want := range segs {
		got, err := a.Open(ctx, 1, n)
		if err != nil || !got.Complete || !bytes.Equal(got.Data, want) {
			t.Fatalf("Open segment %d: complete %v, equal %v, err %v", n, got.Complete, bytes.Equal(got.Data, want), err)
		}
	}
	got, err := a.Open(ctx, 1, 4)
	if err != nil || got.Complete || got.End != open+8292 || !bytes.Equal(got.Data[:8292], append(c1, c2...)) ||
		!bytes.Equal(got.Data[8292:], make([]byte, size-8292)) {
		t.Fatalf("Open open segment: complete %v, end %s, err %v; want chunks then zeros to %s", got.Complete, got.End, err, open+8292)
	}
	if err := s.Delete(ctx, "wal/db1/00000001/000000010000000000000002.zst.age"); err != nil {
		t.Fatal(err)
	}
	expectGap(t, mustVerify(t, a), wal.Gap{Store: s.Name(), Timeline: 1, Start: 2 * size, End: 3 * size}, "not archived")
	if got, want := mustEnd(t, a), (wal.Position{Timeline: 1, LSN: 2 * size}); got != want {
		t.Fatalf("End after the deletion = %+v, want %+v", got, want)
	}
}
