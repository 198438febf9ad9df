package wal_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/wal"
	"github.com/autograph/pgbackup/store"
)

// history is a timeline history file naming parent and switch point.
func history(parent uint32, at wal.LSN) []byte {
	return fmt.Appendf(nil, "%d\t%s\tno recovery target specified\n", parent, at)
}

func TestTimelines(t *testing.T) {
	t.Parallel()
	switchAt := seg(2) + 1000
	build := func(t *testing.T, oldTail bool) *fixture {
		f := newFixture(t)
		mustPutSegment(t, f.a, 1, 1)
		if oldTail {
			// The old timeline up to the switch, and past it (WAL the
			// old primary wrote that is not on the new timeline's path).
			mustPutPartial(t, f.a, 1, seg(2), switchAt+500)
		}
		if err := f.a.PutHistory(ctx, 2, history(1, switchAt)); err != nil {
			t.Fatal(err)
		}
		return f
	}
	t.Run("resume on the new timeline at the switch point", func(t *testing.T) {
		t.Parallel()
		f := build(t, true)
		if got, want := mustEnd(t, f.a), (wal.Position{Timeline: 2, LSN: switchAt}); got != want {
			t.Fatalf("End = %+v, want %+v", got, want)
		}
	})
	t.Run("the new timeline continues the chain", func(t *testing.T) {
		t.Parallel()
		f := build(t, true)
		mustPutPartial(t, f.a, 2, switchAt, seg(3))
		mustPutSegment(t, f.a, 2, 3)
		if got, want := mustEnd(t, f.a), (wal.Position{Timeline: 2, LSN: seg(4)}); got != want {
			t.Fatalf("End = %+v, want %+v", got, want)
		}
		c := mustVerify(t, f.a)[0]
		if len(c.Gaps) > 0 || c.Histories != 1 || c.End != (wal.Position{Timeline: 2, LSN: seg(4)}) {
			t.Fatalf("chain = %+v, want no gap to 2/%s", c, seg(4))
		}
	})
	t.Run("old timeline missing before the switch", func(t *testing.T) {
		t.Parallel()
		f := build(t, false)
		mustPutPartial(t, f.a, 2, switchAt, seg(3))
		mustPutSegment(t, f.a, 2, 3)
		expectGap(t, mustVerify(t, f.a), wal.Gap{Store: "m1", Timeline: 1, Start: seg(2), End: switchAt}, "not archived")
	})
	t.Run("new timeline missing after the switch", func(t *testing.T) {
		t.Parallel()
		f := build(t, true)
		mustPutSegment(t, f.a, 2, 3)
		expectGap(t, mustVerify(t, f.a), wal.Gap{Store: "m1", Timeline: 2, Start: switchAt, End: seg(3)}, "not archived")
	})
}

func TestOpen(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	whole := mustPutSegment(t, f.a, 1, 1)
	got, err := f.a.Open(ctx, 1, 1)
	if err != nil || !got.Complete || !bytes.Equal(got.Data, whole) {
		t.Fatalf("Open complete segment: complete %v, equal %v, err %v", got.Complete, bytes.Equal(got.Data, whole), err)
	}
	a := mustPutPartial(t, f.a, 1, seg(2), seg(2)+100)
	b := mustPutPartial(t, f.a, 1, seg(2)+100, seg(2)+300)
	// An archiver resumed inside b: its chunk overlaps b, same bytes.
	c := append(bytes.Clone(b[150:]), randomBytes(t, 100)...)
	if err := f.a.PutPartial(ctx, 1, seg(2)+250, c); err != nil {
		t.Fatal(err)
	}
	got, err = f.a.Open(ctx, 1, 2)
	if err != nil {
		t.Fatalf("Open open segment: %v", err)
	}
	want := make([]byte, segSize)
	copy(want, a)
	copy(want[100:], b)
	copy(want[300:], c[50:])
	if got.Complete || got.Start != seg(2) || got.End != seg(2)+400 || !bytes.Equal(got.Data, want) {
		t.Fatalf("Open open segment: complete %v, %s-%s, equal %v; want open, %s-%s, zero padded",
			got.Complete, got.Start, got.End, bytes.Equal(got.Data, want), seg(2), seg(2)+400)
	}
	// Overlapping chunks that disagree are not trusted.
	d := randomBytes(t, 100)
	mustPutPartial(t, f.a, 1, seg(4), seg(4)+100)
	if err := f.a.PutPartial(ctx, 1, seg(4)+50, d); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Open(ctx, 1, 4); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Open disagreeing chunks: err = %v, want ErrCorrupt", err)
	}
	if _, err := f.a.Open(ctx, 1, 9); !errors.Is(err, wal.ErrNotArchived) {
		t.Fatalf("Open missing: err = %v, want ErrNotArchived", err)
	}
	mustPutPartial(t, f.a, 1, seg(3), seg(3)+10)
	mustPutPartial(t, f.a, 1, seg(3)+20, seg(3)+30)
	if _, err := f.a.Open(ctx, 1, 3); !errors.Is(err, wal.ErrGap) || errors.Is(err, wal.ErrNotArchived) {
		t.Fatalf("Open with a chunk hole: err = %v, want ErrGap", err)
	}
	tamper(t, f.stores[0], "wal/db1/00000001/000000010000000000000001.zst.age", func(b []byte) { b[len(b)-1] ^= 1 })
	if _, err := f.a.Open(ctx, 1, 1); !errors.Is(err, wal.ErrCorrupt) || errors.Is(err, wal.ErrNotArchived) {
		t.Fatalf("Open tampered: err = %v, want ErrCorrupt", err)
	}
}

// TestOpenFallsBackToAnotherStore: a copy that does not verify is passed
// over for one that does.
func TestOpenFallsBackToAnotherStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.NewMemory("m1"), store.NewMemory("m2"))
	whole := mustPutSegment(t, f.a, 1, 1)
	tamper(t, f.stores[0], "wal/db1/00000001/000000010000000000000001.zst.age", func(b []byte) { b[len(b)-1] ^= 1 })
	got, err := f.a.Open(ctx, 1, 1)
	if err != nil || !bytes.Equal(got.Data, whole) {
		t.Fatalf("Open: equal %v, err %v; want m2's copy", bytes.Equal(got.Data, whole), err)
	}
}

// TestUnsignedObjectsRefusedWithKeys: an archive with keys does not trust
// objects written without them (as manifests).
func TestUnsignedObjectsRefusedWithKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	unsigned := f.opts
	unsigned.Signer = nil
	mustPutSegment(t, mustNew(t, unsigned), 1, 1)
	expectGap(t, mustVerify(t, f.a), wal.Gap{Store: "m1", Timeline: 1, Start: seg(1), End: seg(2),
		Key: "wal/db1/00000001/000000010000000000000001.zst.age"}, "not signed")
	if _, err := f.a.Open(ctx, 1, 1); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Open unsigned: err = %v, want ErrCorrupt", err)
	}
}

// TestSegmentSizeMismatchIsNamed: a reader set up with another segment
// size is told so, not shown every object as moved.
func TestSegmentSizeMismatchIsNamed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mustPutSegment(t, f.a, 1, 1)
	other := f.opts
	other.SegmentSize = 2 * segSize
	chains := mustVerify(t, mustNew(t, other))
	if len(chains[0].Gaps) != 1 || !strings.Contains(chains[0].Gaps[0].Reason, "segment size 1048576") {
		t.Fatalf("gaps = %v, want one naming the segment size", chains[0].Gaps)
	}
}

// TestResumeFillsOnlyTheStoreThatLacks: after a put that reached one
// store only, the retry leaves the first store's object as it was and
// writes the other; an empty store does not pull End back to zero.
func TestResumeFillsOnlyTheStoreThatLacks(t *testing.T) {
	t.Parallel()
	m1, m2, empty := store.NewMemory("m1"), store.NewMemory("m2"), store.NewMemory("m3")
	f := newFixture(t, m1, m2)
	mustPutSegment(t, f.a, 1, 1)
	only1 := f.opts
	only1.Stores = []store.Store{m1}
	chunk := mustPutPartial(t, mustNew(t, only1), 1, seg(2), seg(2)+100)
	before, _ := m1.List(ctx, "")
	if err := f.a.PutPartial(ctx, 1, seg(2), chunk); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if after, _ := m1.List(ctx, ""); fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("m1 was written again:\nbefore %v\n after %v", before, after)
	}
	if got, want := keys(t, m2), keys(t, m1); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("m2 holds %v, want %v", got, want)
	}
	three := f.opts
	three.Stores = []store.Store{m1, m2, empty}
	if got, want := mustEnd(t, mustNew(t, three)), (wal.Position{Timeline: 1, LSN: seg(2) + 100}); got != want {
		t.Fatalf("End with an empty store = %+v, want %+v", got, want)
	}
}

// TestPlainUnsignedArchive: without codec, encryption or keys the payload
// after the header line is the WAL itself (what the documented
// `tail -n +2` relies on), and everything reads back.
func TestPlainUnsignedArchive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	plain := f.opts
	plain.Codec, plain.Encryption, plain.Signer = engine.Codec{}, nil, nil
	a := mustNew(t, plain)
	data := mustPutSegment(t, a, 1, 1)
	obj := get(t, f.stores[0], "wal/db1/00000001/000000010000000000000001")
	if _, payload, _ := bytes.Cut(obj, []byte("\n")); !bytes.Equal(payload, data) {
		t.Fatalf("payload after the header line is not the WAL (%d bytes)", len(payload))
	}
	got, err := a.Open(ctx, 1, 1)
	if err != nil || !bytes.Equal(got.Data, data) {
		t.Fatalf("Open: equal %v, err %v", bytes.Equal(got.Data, data), err)
	}
	if c := mustVerify(t, a)[0]; len(c.Gaps) > 0 || c.Segments != 1 {
		t.Fatalf("chain %+v, want one segment, no gap", c)
	}
}

// TestHistoryLoopRefused: a history header naming its own timeline as
// parent (only possible unsigned) is a gap, not an endless walk.
func TestHistoryLoopRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	plain := f.opts
	plain.Codec, plain.Encryption, plain.Signer = engine.Codec{}, nil, nil
	a := mustNew(t, plain)
	mustPutSegment(t, a, 2, 1)
	forged := `{"format":"pgbackup-wal/1","target":"db1","key":"wal/db1/00000002.history","kind":"history","timeline":2,` +
		`"segment_size":1048576,"parent_timeline":2,"switch_lsn":"0000000000100000","raw_size":0,"payload_size":0,` +
		`"raw_sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","payload_sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}` + "\n"
	if err := f.stores[0].Put(ctx, "wal/db1/00000002.history", strings.NewReader(forged), nil); err != nil {
		t.Fatal(err)
	}
	// Bounded, so that a walk that loops fails the test instead of
	// hanging the suite.
	done := make(chan []wal.Chain, 1)
	go func() {
		chains, err := a.Verify(ctx)
		if err != nil {
			chains = nil
		}
		done <- chains
	}()
	var c wal.Chain
	select {
	case chains := <-done:
		if len(chains) != 1 {
			t.Fatalf("Verify: %d chains, want 1 (an error?)", len(chains))
		}
		c = chains[0]
	case <-time.After(30 * time.Second):
		t.Fatal("Verify did not return: the walk loops")
	}
	if len(c.Gaps) != 1 || !strings.Contains(c.Gaps[0].Reason, "history names parent 2") {
		t.Fatalf("gaps = %v, want the forged history refused", c.Gaps)
	}
	if got, want := mustEnd(t, a), (wal.Position{Timeline: 2, LSN: seg(2)}); got != want {
		t.Fatalf("End = %+v, want %+v", got, want)
	}
}

// TestOpenNewTimelineTakesThePrefixFromItsParent: a new timeline streamed
// from its switch point opens with the parent's WAL before the switch.
func TestOpenNewTimelineTakesThePrefixFromItsParent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	switchAt := seg(2) + 1000
	old := mustPutPartial(t, f.a, 1, seg(2), switchAt+200) // the old primary wrote past the switch
	if err := f.a.PutHistory(ctx, 2, history(1, switchAt)); err != nil {
		t.Fatal(err)
	}
	newer := mustPutPartial(t, f.a, 2, switchAt, seg(3))
	got, err := f.a.Open(ctx, 2, 2)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	want := append(bytes.Clone(old[:1000]), newer...)
	if !got.Complete || got.Start != seg(2) || !bytes.Equal(got.Data, want) {
		t.Fatalf("Open: complete %v, start %s, equal %v; want the parent's 1000 bytes then the new timeline's", got.Complete, got.Start, bytes.Equal(got.Data, want))
	}
}
