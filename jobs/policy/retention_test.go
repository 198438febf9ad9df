package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// timeline makes one backup every step from start, n of them, named by
// their UTC time.
func timeline(start string, step time.Duration, n int) []PruneCandidate {
	var out []PruneCandidate
	t := at(start)
	for range n {
		out = append(out, PruneCandidate{Name: t.UTC().Format("20060102_1504"), At: t})
		t = t.Add(step)
	}
	return out
}

func kept(ds []PruneDecision) []string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.Name)
		}
	}
	return out
}

func TestSelectPrune(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		backups []PruneCandidate
		policy  Retention
		want    []string // kept, newest first
	}{
		{"keep last 2", timeline("2026-03-01T00:00:00Z", time.Hour, 5), Retention{KeepLast: 2},
			[]string{"20260301_0400", "20260301_0300"}},
		{"daily keeps each day's newest", timeline("2026-03-01T00:00:00Z", 6*time.Hour, 12), Retention{KeepDaily: 3},
			[]string{"20260303_1800", "20260302_1800", "20260301_1800"}},
		{"days without backups use no slot", []PruneCandidate{
			{Name: "jan01", At: at("2026-01-01T10:00:00Z")}, {Name: "jan05", At: at("2026-01-05T10:00:00Z")},
			{Name: "jan09", At: at("2026-01-09T10:00:00Z")}, {Name: "jan10a", At: at("2026-01-10T01:00:00Z")},
			{Name: "jan10b", At: at("2026-01-10T23:59:59Z")},
		}, Retention{KeepDaily: 3}, []string{"jan10b", "jan09", "jan05"}},
		{"UTC midnight splits days", []PruneCandidate{
			{Name: "before", At: at("2026-03-01T23:59:59Z")}, {Name: "after", At: at("2026-03-02T00:00:00Z")},
			// The same instant written in another zone is the same day.
			{Name: "zoned", At: at("2026-03-02T01:30:00+02:00")},
		}, Retention{KeepDaily: 2}, []string{"after", "before"}},
		{"ISO weeks start on Monday, and cross years", []PruneCandidate{
			{Name: "sun", At: at("2026-12-27T23:00:00Z")},  // 2026-W52
			{Name: "mon", At: at("2026-12-28T01:00:00Z")},  // 2026-W53
			{Name: "fri", At: at("2027-01-01T12:00:00Z")},  // still 2026-W53
			{Name: "mon2", At: at("2027-01-04T12:00:00Z")}, // 2027-W01
		}, Retention{KeepWeekly: 3}, []string{"mon2", "fri", "sun"}},
		{"months", timeline("2026-01-15T00:00:00Z", 10*24*time.Hour, 9), Retention{KeepMonthly: 2},
			[]string{"20260405_0000", "20260326_0000"}},
		{"duplicates at one instant keep one, by name", []PruneCandidate{
			{Name: "b", At: at("2026-03-01T12:00:00Z")}, {Name: "a", At: at("2026-03-01T12:00:00Z")},
			{Name: "c", At: at("2026-02-28T12:00:00Z")},
		}, Retention{KeepDaily: 2}, []string{"b", "c"}},
		{"rules add up", timeline("2026-01-01T00:00:00Z", 12*time.Hour, 120), Retention{KeepLast: 2, KeepDaily: 3, KeepWeekly: 2, KeepMonthly: 3},
			// Newest is Sunday 1 March 12:00. Last 2; daily: 1 Mar, 28 and
			// 27 Feb; weekly: W09 (1 Mar), W08 (22 Feb); monthly: March,
			// February (28th), January (31st).
			[]string{"20260301_1200", "20260301_0000", "20260228_1200", "20260227_1200", "20260222_1200", "20260131_1200"}},
		{"no policy keeps everything", timeline("2026-03-01T00:00:00Z", time.Hour, 3), Retention{},
			[]string{"20260301_0200", "20260301_0100", "20260301_0000"}},
		{"the newest always stays", timeline("2026-03-01T00:00:00Z", time.Hour, 3), Retention{KeepMonthly: 1},
			[]string{"20260301_0200"}},
		{"nothing to decide", nil, Retention{KeepLast: 1}, nil},
	}
	for _, tt := range tests {
		got := kept(SelectPrune(tt.backups, tt.policy))
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: kept %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSelectPruneKeepsBackupsInUseAndSaysWhy(t *testing.T) {
	t.Parallel()
	b := timeline("2026-03-01T00:00:00Z", time.Hour, 4)
	b[0].InUse = true // the oldest
	ds := SelectPrune(b, Retention{KeepLast: 1})
	if got := kept(ds); !slices.Equal(got, []string{"20260301_0300", "20260301_0000"}) {
		t.Fatalf("kept %v, want the newest and the one in use", got)
	}
	for _, d := range ds {
		if len(d.Reasons) == 0 {
			t.Errorf("%s has no reason", d.Name)
		}
		if d.Name == "20260301_0000" && !strings.Contains(strings.Join(d.Reasons, ";"), "in use") {
			t.Errorf("reasons %v do not say it is in use", d.Reasons)
		}
		if !d.Keep && !strings.Contains(strings.Join(d.Reasons, ";"), "not kept") {
			t.Errorf("%s goes without saying why: %v", d.Name, d.Reasons)
		}
	}
}
