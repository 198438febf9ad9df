package worker

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// AdoptEngine adopts the old manager's archives and lists backups (an
// *engine.Engine).
type AdoptEngine interface {
	Adopt(ctx context.Context, req engine.AdoptRequest) (*engine.AdoptResult, error)
	List(ctx context.Context, from []string) ([]engine.Entry, error)
}

// AdoptWorker runs tasks.TypeBackupAdopt. Adoption is a task, not an API
// call, because it needs what only workers have: pg_restore (to list every
// archive), WORK_DIR (to read each in full and pack directory dumps), the
// signing key, and time (it reads every old archive).
type AdoptWorker struct {
	Engine  AdoptEngine
	Targets *policy.TargetSet
	// Queue reads the queue for the retention preview (backups in use are
	// kept); nil keeps none for that reason.
	Queue  tasks.TaskLister
	Ledger *Ledger
}

func (w *AdoptWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.AdoptPayload, tasks.AdoptOutcome](rt, w)
}

func (w *AdoptWorker) logFields(p tasks.AdoptPayload) logrus.Fields {
	return logrus.Fields{"dry_run": p.DryRun}
}

// Work adopts (or, dry, lists) the old manager's archives.
func (w *AdoptWorker) Work(ctx context.Context, p tasks.AdoptPayload) (tasks.AdoptOutcome, error) {
	res, err := w.Engine.Adopt(ctx, engine.AdoptRequest{DryRun: p.DryRun, Plan: p.Plan, ScheduledTarget: w.Targets.OfDatabase})
	if err != nil {
		return tasks.AdoptOutcome{}, err
	}
	out := tasks.AdoptOutcome{AdoptResult: *res}
	if !p.DryRun {
		for _, m := range res.Manifests {
			w.Ledger.markName(context.WithoutCancel(ctx), m.Name.String(), true)
		}
		return out, nil
	}
	out.PruneWouldDelete, err = w.prunePreview(ctx, res.Manifests)
	return out, err
}

// prunePreview is what the next prune of each target whose retention
// takes adopted backups would delete once these manifests are published.
func (w *AdoptWorker) prunePreview(ctx context.Context, adopted []engine.Manifest) (map[string][]string, error) {
	var out map[string][]string
	for _, t := range w.Targets.All() {
		if !t.AdoptedRetention || !t.Retention.Enabled() {
			continue
		}
		inUse, err := tasks.BackupsInUse(w.Queue)
		if err != nil {
			return nil, fmt.Errorf("adopt: retention preview: %w", err)
		}
		decisions, err := policy.PlanPrune(ctx, withAdopted{w.Engine, adopted}, inUse, t)
		if err != nil {
			return nil, fmt.Errorf("adopt: retention preview of %s: %w", t.Name, err)
		}
		for _, d := range decisions {
			if !d.Keep {
				if out == nil {
					out = map[string][]string{}
				}
				out[t.Name] = append(out[t.Name], d.Name)
			}
		}
	}
	return out, nil
}

// withAdopted lists the backups as they will be once a dry run's
// adoptions are published.
type withAdopted struct {
	l       policy.Lister
	adopted []engine.Manifest
}

func (w withAdopted) List(ctx context.Context, from []string) ([]engine.Entry, error) {
	entries, err := w.l.List(ctx, from)
	if err != nil {
		return nil, err
	}
	for _, m := range w.adopted {
		entries = append(entries, engine.Entry{Manifest: m, Locations: m.Stores})
	}
	return entries, nil
}
