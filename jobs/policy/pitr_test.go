package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/wal"
)

// baseEntry is a base backup of archive db1 finished at, starting its WAL
// at segment startSeg (16 MiB segments) of timeline 1.
func baseEntry(name string, at time.Time, startSeg uint64, unverified string) engine.Entry {
	start := wal.LSN(startSeg<<24 + 0x28)
	return engine.Entry{Manifest: engine.Manifest{Name: engine.MustParseName(name), Content: engine.ContentBase, Target: "db1",
		StartedAt: at.Add(-time.Minute), FinishedAt: at,
		Base: &engine.BaseInfo{WALArchive: "db1", Timeline: 1, StartLSN: start.String(), StopLSN: (start + 0x1000).String()}},
		Unverified: unverified}
}

func TestSelectPITR(t *testing.T) {
	t.Parallel()
	now := at("2026-03-10T12:00:00Z")
	const week = 7 * 24 * time.Hour
	start := now.Add(-week)
	type base struct {
		name       string
		at         time.Time
		seg        uint64
		unverified string
		inUse      bool
	}
	cases := []struct {
		name    string
		bases   []base
		keep    []string
		cutSeg  uint64 // 0: no cut
		noBases bool
	}{
		{name: "no base backup: nothing pruned", noBases: true},
		{name: "inside the window all kept, the newest before kept, older ones go",
			bases: []base{
				{"b_old2", start.Add(-48 * time.Hour), 1, "", false},
				{"b_old1", start.Add(-24 * time.Hour), 2, "", false},
				{"b_before", start.Add(-time.Second), 3, "", false},
				{"b_in1", start.Add(time.Second), 4, "", false},
				{"b_in2", now.Add(-time.Hour), 5, "", false},
			},
			keep: []string{"b_in2", "b_in1", "b_before"}, cutSeg: 3},
		{name: "one finished exactly at the window's start covers it",
			bases: []base{
				{"b_old", start.Add(-time.Hour), 1, "", false},
				{"b_edge", start, 2, "", false},
				{"b_in", now.Add(-time.Hour), 3, "", false},
			},
			keep: []string{"b_in", "b_edge"}, cutSeg: 2},
		{name: "all inside the window: all kept",
			bases: []base{{"b_in1", start.Add(time.Hour), 1, "", false}, {"b_in2", now, 2, "", false}},
			keep:  []string{"b_in2", "b_in1"}, cutSeg: 1},
		{name: "all before the window: only the newest kept",
			bases: []base{{"b_1", start.Add(-3 * time.Hour), 1, "", false}, {"b_2", start.Add(-2 * time.Hour), 2, "", false}},
			keep:  []string{"b_2"}, cutSeg: 2},
		{name: "an untrusted newer one is neither the anchor nor the cut, and is kept",
			bases: []base{
				{"b_old", start.Add(-2 * time.Hour), 1, "", false},
				{"b_good", start.Add(-time.Hour), 2, "", false},
				{"b_forged_before", start.Add(-time.Minute), 3, "signature missing", false},
				{"b_forged_old", start.Add(-9 * time.Hour), 0, "signature missing", false},
			},
			keep: []string{"b_forged_before", "b_good", "b_forged_old"}, cutSeg: 2},
		{name: "only untrusted ones: nothing pruned",
			bases: []base{{"b_forged", start.Add(-time.Hour), 1, "bad", false}},
			keep:  []string{"b_forged"}},
		{name: "in use keeps it and its WAL",
			bases: []base{
				{"b_used", start.Add(-9 * time.Hour), 1, "", true},
				{"b_old", start.Add(-5 * time.Hour), 2, "", false},
				{"b_before", start.Add(-time.Hour), 3, "", false},
			},
			keep: []string{"b_before", "b_used"}, cutSeg: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var entries []engine.Entry
			inUse := map[string]bool{}
			for _, b := range tc.bases {
				entries = append(entries, baseEntry(b.name, b.at, b.seg, b.unverified))
				inUse[b.name] = b.inUse
			}
			// A dump and another archive's base backup are not this one's.
			entries = append(entries, scheduledEntry("dump_1", start.Add(-99*time.Hour), ""))
			other := baseEntry("b_other", start.Add(-99*time.Hour), 1, "")
			other.Base.WALArchive = "db2"
			entries = append(entries, other)

			plan := SelectPITR(BasesOf(entries, "db1", inUse), week, now)
			if len(plan.Decisions) != len(tc.bases) {
				t.Fatalf("%d decisions, want one per base backup of db1 (%d)", len(plan.Decisions), len(tc.bases))
			}
			if got := kept(plan.Decisions); !slices.Equal(got, tc.keep) && !(len(got) == 0 && len(tc.keep) == 0) {
				t.Errorf("kept %v, want %v", got, tc.keep)
			}
			var want wal.Position
			if tc.cutSeg > 0 {
				want = wal.Position{Timeline: 1, LSN: wal.LSN(tc.cutSeg<<24 + 0x28)}
			}
			if plan.Cut != want {
				t.Errorf("WAL cut %+v (%s), want %+v (%s)", plan.Cut, plan.Cut.LSN, want, want.LSN)
			}
			for _, d := range plan.Decisions {
				if len(d.Reasons) == 0 {
					t.Errorf("%s: no reason given", d.Name)
				}
			}
		})
	}
}

func TestOldestBase(t *testing.T) {
	t.Parallel()
	t0 := at("2026-03-01T00:00:00Z")
	entries := []engine.Entry{
		baseEntry("b_forged", t0.Add(-2*time.Hour), 1, "bad"),
		baseEntry("b_uncovered", t0.Add(-time.Hour), 2, ""),
		baseEntry("b_1", t0, 3, ""),
		baseEntry("b_2", t0.Add(time.Hour), 4, ""),
	}
	covered := func(start, stop wal.Position) bool { return start.LSN >= 3<<24 }
	if m := OldestBase(entries, "db1", covered); m == nil || m.Name.String() != "b_1" {
		t.Fatalf("oldest covered base backup %v, want b_1 (b_forged is untrusted, b_uncovered's WAL is gone)", m)
	}
	if m := OldestBase(entries, "db1", nil); m == nil || m.Name.String() != "b_uncovered" {
		t.Fatalf("oldest base backup %v, want b_uncovered", m)
	}
	if m := NewestBase(entries, "db1"); m == nil || m.Name.String() != "b_2" {
		t.Fatalf("newest base backup %v, want b_2", m)
	}
	if OldestBase(entries, "db2", nil) != nil || NewestBase(nil, "db1") != nil {
		t.Fatal("a base backup found for an archive that has none")
	}
}
