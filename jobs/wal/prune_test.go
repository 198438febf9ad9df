package wal_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/jobs/wal"
	"github.com/autograph/pgbackup/store"
)

// walKeys are st's keys under the archive with the extensions cut, and
// without the archive's root, sorted.
func walKeys(t *testing.T, st store.Store) []string {
	t.Helper()
	var out []string
	for _, k := range keys(t, st) {
		k = strings.TrimPrefix(k, wal.Root("db1"))
		k = strings.TrimSuffix(strings.TrimSuffix(k, ".age"), ".zst")
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPruneCutsBeforeThePositionOnly: segments and chunks wholly before
// the cut go, on its timeline and the ones before; the segment holding the
// cut, everything after it, history files and the later timeline stay;
// chunks of a segment stored complete go wherever they are; the chain
// still verifies from the cut on. A dry run deletes nothing and reports
// the same.
func TestPruneCutsBeforeThePositionOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	switchAt := seg(4) + 1000
	for n := uint64(1); n <= 3; n++ {
		mustPutSegment(t, f.a, 1, n)
	}
	mustPutPartial(t, f.a, 1, seg(2), seg(2)+100) // a chunk of segment 2, complete since
	mustPutPartial(t, f.a, 1, seg(4), switchAt)
	if err := f.a.PutHistory(ctx, 2, history(1, switchAt)); err != nil {
		t.Fatal(err)
	}
	mustPutPartial(t, f.a, 2, switchAt, seg(5))
	seg5 := mustPutSegment(t, f.a, 2, 5)
	mustPutPartial(t, f.a, 2, seg(5), seg(5)+8192) // redundant chunk after the cut
	mustPutPartial(t, f.a, 2, seg(6), seg(6)+8192) // the open segment: stays

	before := walKeys(t, f.stores[0])
	cut := wal.Position{Timeline: 2, LSN: seg(3) + 10}
	dry, err := f.a.Prune(ctx, cut, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := walKeys(t, f.stores[0]); !slices.Equal(got, before) {
		t.Fatalf("a dry run deleted objects: %v, was %v", got, before)
	}
	r, err := f.a.Prune(ctx, cut, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"00000001/000000010000000000000003", // holds the cut
		"00000001/partial/000000010000000000000004/0000000000400000-00000000004003E8",
		"00000002.history",
		"00000002/000000020000000000000005",
		"00000002/partial/000000020000000000000004/00000000004003E8-0000000000500000",
		"00000002/partial/000000020000000000000006/0000000000600000-0000000000602000",
	}
	if got := walKeys(t, f.stores[0]); !slices.Equal(got, want) {
		t.Fatalf("after the prune:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r.Segments != 2 || r.Chunks != 2 || r.Objects != 4 || r.BeforeLSN != cut.LSN.String() || r.Timeline != 2 || r.Bytes <= 0 {
		t.Errorf("report %+v: want 2 segments (1, 2) and 2 chunks (of 2 and of 5) before %s", r, cut.LSN)
	}
	if dry.Objects != r.Objects || dry.Bytes != r.Bytes || !dry.DryRun || r.DryRun {
		t.Errorf("dry run %+v, real run %+v: want the same counts", dry, r)
	}
	c := mustVerify(t, f.a)[0]
	if len(c.Gaps) > 0 || c.Start != (wal.Position{Timeline: 1, LSN: seg(3)}) {
		t.Fatalf("chain after the prune %+v: want it whole from 1/%s", c, seg(3))
	}
	got, err := f.a.Open(ctx, 2, 5)
	if err != nil || !got.Complete || !bytes.Equal(got.Data, seg5) {
		t.Fatalf("segment 5 after its chunk was pruned: complete %v, err %v", got.Complete, err)
	}
	if r, err := f.a.Prune(ctx, wal.Position{}, false); err != nil || r.Objects != 0 {
		t.Fatalf("a second prune without a cut: %+v, %v; want nothing left to prune", r, err)
	}
}

// TestPruneKeepsChunksOfAnUnverifiableSegment: a complete segment whose
// header does not verify does not make its chunks prunable.
func TestPruneKeepsChunksOfAnUnverifiableSegment(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mustPutPartial(t, f.a, 1, seg(1), seg(1)+100)
	mustPutSegment(t, f.a, 1, 1)
	key := wal.Root("db1") + "00000001/000000010000000000000001.zst.age"
	if err := f.stores[0].Put(ctx, key, strings.NewReader("forged"), nil); err != nil {
		t.Fatal(err)
	}
	if r, err := f.a.Prune(ctx, wal.Position{}, false); err != nil || r.Objects != 0 {
		t.Fatalf("prune: %+v, %v; want the chunk kept", r, err)
	}
}

// failingDeletes is a store whose Delete fails after n successes.
type failingDeletes struct {
	store.Store
	n int
}

func (s *failingDeletes) Delete(ctx context.Context, key string) error {
	if s.n == 0 {
		return errors.New("store went away")
	}
	s.n--
	return s.Store.Delete(ctx, key)
}

// TestPruneInterruptedLeavesNoHole: a prune that fails part way has
// deleted the oldest objects only, so the archive starts later and has no
// gap in the middle.
func TestPruneInterruptedLeavesNoHole(t *testing.T) {
	t.Parallel()
	st := &failingDeletes{Store: store.NewMemory("m1")}
	f := newFixture(t, st)
	for n := uint64(1); n <= 5; n++ {
		mustPutSegment(t, f.a, 1, n)
	}
	for done := range 4 {
		st.n = 1
		_, err := f.a.Prune(ctx, wal.Position{Timeline: 1, LSN: seg(5)}, false)
		if err == nil && done < 3 {
			t.Fatalf("prune %d: no error with the store failing after one delete", done)
		}
		c := mustVerify(t, f.a)[0]
		if len(c.Gaps) > 0 || c.Start.LSN != seg(uint64(done)+2) {
			t.Fatalf("after prune %d deleted one object: chain %+v, want whole from %s", done, c, seg(uint64(done)+2))
		}
	}
}
