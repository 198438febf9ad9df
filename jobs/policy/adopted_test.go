package policy

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestAdoptedBackupsArePrunedOnlyWhenTheOperatorOptsIn: months of the old
// manager's history must not vanish on the first prune.
func TestAdoptedBackupsArePrunedOnlyWhenTheOperatorOptsIn(t *testing.T) {
	t.Parallel()
	t0 := at("2026-03-01T00:00:00Z")
	old1 := scheduledEntry("autograph_scheduled_20260101_020000", t0.Add(-60*24*time.Hour), "")
	old2 := scheduledEntry("autograph_scheduled_20260102_020000", t0.Add(-59*24*time.Hour), "")
	old1.Adopted, old2.Adopted = true, true
	l := fakeLister{old1, old2, scheduledEntry("new-1", t0, "")}
	for _, tc := range []struct {
		name    string
		optIn   bool
		deleted []string
	}{
		{"adopted kept by default", false, nil},
		{"adopted pruned with ADOPTED_RETENTION", true, []string{"autograph_scheduled_20260102_020000", "autograph_scheduled_20260101_020000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := Target{Name: "app", Retention: Retention{KeepLast: 1}, AdoptedRetention: tc.optIn}
			ds, err := PlanPrune(context.Background(), l, nil, app)
			if err != nil {
				t.Fatal(err)
			}
			var deleted []string
			for _, d := range ds {
				if !d.Keep {
					deleted = append(deleted, d.Name)
				}
			}
			if !slices.Equal(deleted, tc.deleted) {
				t.Fatalf("prune would delete %v, want %v", deleted, tc.deleted)
			}
		})
	}
}
