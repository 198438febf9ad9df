package policy

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
)

// fakeLister lists fixed entries.
type fakeLister []engine.Entry

func (f fakeLister) List(context.Context, []string) ([]engine.Entry, error) { return f, nil }

// scheduledEntry is a scheduled backup of target app, finished at, whose
// manifest did not verify when unverified is set.
func scheduledEntry(name string, at time.Time, unverified string) engine.Entry {
	return engine.Entry{Manifest: engine.Manifest{Name: engine.MustParseName(name), Target: "app", Scheduled: true,
		StartedAt: at, FinishedAt: at.Add(time.Minute)}, Verified: unverified == "", Unverified: unverified}
}

// TestUnverifiedBackupsAreNeitherNewestNorPruned: a newer backup whose
// manifest does not verify is not the newest good backup (drills, RPO),
// does not push good backups out of the retention, and is itself kept
// with the reason.
func TestUnverifiedBackupsAreNeitherNewestNorPruned(t *testing.T) {
	t.Parallel()
	t0 := at("2026-03-01T00:00:00Z")
	l := fakeLister{
		scheduledEntry("good-1", t0, ""),
		scheduledEntry("good-2", t0.Add(time.Hour), ""),
		scheduledEntry("forged-3", t0.Add(2*time.Hour), "in minio: manifest signature missing or invalid"),
		scheduledEntry("forged-0", t0.Add(-time.Hour), "in minio: manifest signature missing or invalid"),
	}
	app := Target{Name: "app"}
	m, err := Newest(context.Background(), l, app)
	if err != nil || m.Name.String() != "good-2" {
		t.Fatalf("newest: %v, %v; want good-2 (forged-3 is newer but does not verify)", m, err)
	}
	app.Retention = Retention{KeepLast: 1}
	ds, err := PlanPrune(context.Background(), l, nil, app)
	if err != nil {
		t.Fatal(err)
	}
	if got := kept(ds); !slices.Equal(got, []string{"forged-3", "good-2", "forged-0"}) {
		t.Fatalf("kept %v, want the newest good backup and both unverified ones", got)
	}
	for _, d := range ds {
		if strings.HasPrefix(d.Name, "forged") && !strings.Contains(strings.Join(d.Reasons, ";"), "signature does not verify") {
			t.Errorf("%s kept without saying why: %v", d.Name, d.Reasons)
		}
	}
	only := fakeLister{scheduledEntry("forged-3", t0, "bad")}
	if _, err := Newest(context.Background(), only, Target{Name: "app"}); err == nil {
		t.Error("a target whose only backup does not verify has a newest good backup")
	}
}
