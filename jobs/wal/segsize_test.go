package wal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/autograph/pgbackup/jobs/wal"
)

// TestSegmentSizeLearnt: an archive opened without a segment size (as
// the archiver, the scheduler and `pgbackup wal verify` open it) takes
// the writer's (the server's wal_segment_size) and readers learn it from
// the objects' signed headers, so that every one names segments alike.
// The segments straddle 1 MiB's log-id boundary (4096 segments), where
// names of 1 MiB and 16 MiB segments differ in every part.
func TestSegmentSizeLearnt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	open := func() *wal.StoreArchive {
		o := f.opts
		o.SegmentSize = 0
		return mustNew(t, o)
	}
	reader := open() // opened on the empty archive, before any write
	if p := mustEnd(t, reader); p != (wal.Position{}) {
		t.Fatalf("End of an empty archive = %+v", p)
	}
	if got := reader.SegmentSize(); got != wal.DefaultSegmentSize {
		t.Fatalf("SegmentSize of an empty archive = %d, want the default %d", got, wal.DefaultSegmentSize)
	}

	w := open()
	if err := w.SetSegmentSize(ctx, segSize); err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for segno := uint64(4095); segno <= 4097; segno++ {
		want = append(want, mustPutSegment(t, w, 1, segno))
	}
	mustPutPartial(t, w, 1, seg(4098), seg(4098)+1000)

	for name, a := range map[string]*wal.StoreArchive{"reader opened before the writes": reader, "new reader": open()} {
		if p := mustEnd(t, a); p != (wal.Position{Timeline: 1, LSN: seg(4098) + 1000}) {
			t.Errorf("%s: End = %+v, want timeline 1 at %s", name, p, seg(4098)+1000)
		}
		if got := a.SegmentSize(); got != segSize {
			t.Errorf("%s: SegmentSize = %d, want the writer's %d", name, got, segSize)
		}
		chains := mustVerify(t, a)
		if len(chains) != 1 || len(chains[0].Gaps) != 0 || chains[0].Segments != 3 || chains[0].Chunks != 1 {
			t.Errorf("%s: Verify = %+v, want 3 segments and 1 chunk without gap", name, chains)
		}
		for i, segno := range []uint64{4095, 4096, 4097} {
			s, err := a.Open(ctx, 1, segno)
			if err != nil || !s.Complete || !bytes.Equal(s.Data, want[i]) {
				t.Errorf("%s: Open segment %d: complete %t, same bytes %t, %v", name, segno, s.Complete, bytes.Equal(s.Data, want[i]), err)
			}
		}
	}

	// The same archive name on a server of another size is refused
	// before anything is written.
	other := open()
	if err := other.SetSegmentSize(ctx, wal.DefaultSegmentSize); !errors.Is(err, wal.ErrSegmentSize) {
		t.Fatalf("SetSegmentSize(16 MiB) on a 1 MiB archive: %v, want ErrSegmentSize", err)
	}
	if err := open().SetSegmentSize(ctx, 3<<20); !errors.Is(err, wal.ErrSegmentSize) {
		t.Fatalf("SetSegmentSize(3 MiB): %v, want ErrSegmentSize", err)
	}
}
