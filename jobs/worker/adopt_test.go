package worker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// adoptFake answers a dry run with fixed manifests and lists fixed entries.
type adoptFake struct {
	adopted []engine.Manifest
	listed  []engine.Entry
}

func (f adoptFake) Adopt(_ context.Context, r engine.AdoptRequest) (*engine.AdoptResult, error) {
	return &engine.AdoptResult{DryRun: r.DryRun, Manifests: f.adopted}, nil
}

func (f adoptFake) List(context.Context, []string) ([]engine.Entry, error) { return f.listed, nil }

// TestAdoptDryRunShowsTheNextPrune: with ADOPTED_RETENTION on, the dry run
// says which adopted backups the next prune would delete; off, none.
func TestAdoptDryRunShowsTheNextPrune(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	adopted := []engine.Manifest{
		{Name: engine.MustParseName("autograph_scheduled_20240101_020000"), Target: "app", Scheduled: true, Adopted: true, StartedAt: now.AddDate(-1, 0, 0)},
		{Name: engine.MustParseName("autograph_scheduled_20240102_020000"), Target: "app", Scheduled: true, Adopted: true, StartedAt: now.AddDate(-1, 0, 1)},
	}
	listed := []engine.Entry{{Manifest: engine.Manifest{Name: engine.MustParseName("app_scheduled_new"), Target: "app", Scheduled: true, StartedAt: now}}}
	for _, optIn := range []bool{false, true} {
		targets, err := policy.NewTargetSet([]policy.Target{{Name: "app", Database: "app", Retention: policy.Retention{KeepLast: 1}, AdoptedRetention: optIn}})
		if err != nil {
			t.Fatal(err)
		}
		w := &AdoptWorker{Engine: adoptFake{adopted, listed}, Targets: targets}
		out, err := w.Work(context.Background(), tasks.AdoptPayload{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		if optIn {
			want = []string{"autograph_scheduled_20240102_020000", "autograph_scheduled_20240101_020000"}
		}
		if got := out.PruneWouldDelete["app"]; !slices.Equal(got, want) {
			t.Errorf("ADOPTED_RETENTION %v: the next prune would delete %v, want %v", optIn, got, want)
		}
	}
}
