package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/jobs/wal"
)

// PruneEngine lists and deletes backups (an *engine.Engine).
type PruneEngine interface {
	List(ctx context.Context, from []string) ([]engine.Entry, error)
	DeleteIf(ctx context.Context, name engine.Name, from []string, condemn func(*engine.Manifest) error) ([]string, error)
}

// PruneWorker runs tasks.TypeBackupPrune: it deletes the scheduled backups
// of a target that its retention lets go.
type PruneWorker struct {
	Engine  PruneEngine
	Targets *policy.TargetSet
	// Queue reads the queue, so that backups queued tasks read are kept; nil
	// keeps none for that reason.
	Queue  tasks.TaskLister
	Ledger *Ledger
	// PITR is the WAL archive of each pitr target, by target name: its
	// prune also deletes the base backups and WAL the archive's
	// pitr_window no longer needs.
	PITR map[string]policy.PITRArchive
	Log  *logrus.Entry
}

func (w *PruneWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.PrunePayload, policy.PruneOutcome](rt, w)
}

func (w *PruneWorker) logFields(p tasks.PrunePayload) logrus.Fields {
	return logrus.Fields{"target": p.Target}
}

func (w *PruneWorker) failureEvent(p tasks.PrunePayload) alert.Event {
	return alert.Event{Event: alert.EventPruneFailed, Target: p.Target}
}

// Work prunes the target.
func (w *PruneWorker) Work(ctx context.Context, p tasks.PrunePayload) (policy.PruneOutcome, error) {
	t, ok := w.Targets.Get(p.Target)
	if !ok {
		return policy.PruneOutcome{}, fmt.Errorf("prune: %w %q", policy.ErrUnknownTarget, p.Target)
	}
	out := policy.PruneOutcome{Target: t.Name, Deleted: []string{}}
	arch, pitr := w.PITR[t.Name]
	if !t.Retention.Enabled() && !pitr {
		return out, nil
	}
	inUse, err := tasks.BackupsInUse(w.Queue)
	if err != nil {
		return out, fmt.Errorf("prune %s: %w", t.Name, err)
	}
	if pitr {
		if err := w.prunePITR(ctx, t, arch, inUse, &out); err != nil {
			return out, err
		}
	}
	if !t.Retention.Enabled() {
		return out, nil
	}
	decisions, err := policy.PlanPrune(ctx, w.Engine, inUse, t)
	if err != nil {
		return out, fmt.Errorf("prune %s: %w", t.Name, err)
	}
	out.Decisions = decisions
	for _, d := range decisions {
		if d.Keep {
			continue
		}
		name, err := parseBackupName("prune "+t.Name, d.Name)
		if err != nil {
			return out, err
		}
		// The same path as DELETE (manifest first, then archive, in every
		// store), but only where the backup's own manifest, read again and
		// verified, says it is this target's scheduled backup: the plan came
		// from a listing, which may have come from a forged catalog.
		deleted, err := w.Engine.DeleteIf(ctx, name, nil, func(m *engine.Manifest) error {
			if _, scheduled := t.Owns(m); !scheduled {
				return fmt.Errorf("%w: backup %s is not a scheduled backup of target %s", engine.ErrInvalid, name, t.Name)
			}
			return nil
		})
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return out, fmt.Errorf("prune %s: %w", t.Name, err)
		}
		if err == nil && len(deleted) == 0 {
			continue // kept: logged by the engine
		}
		out.Deleted = append(out.Deleted, d.Name)
		w.Ledger.markName(context.WithoutCancel(ctx), d.Name, false)
		w.Log.WithFields(logrus.Fields{"target": t.Name, "backup_name": d.Name}).Info("pruned a scheduled backup")
	}
	return out, nil
}

// prunePITR deletes the base backups of t's WAL archive that its
// pitr_window no longer needs, then the archive's WAL before the oldest
// base backup kept: in that order, so that no listed base backup ever
// lacks its WAL. A base backup that cannot be deleted stops the task
// before any WAL goes (it is retried).
func (w *PruneWorker) prunePITR(ctx context.Context, t policy.Target, a policy.PITRArchive, inUse map[string]bool, out *policy.PruneOutcome) error {
	plan, err := policy.PlanPITR(ctx, w.Engine, inUse, a, time.Now())
	if err != nil {
		return fmt.Errorf("prune %s: base backups: %w", t.Name, err)
	}
	out.BaseBackups = plan.Decisions
	for _, d := range plan.Decisions {
		if d.Keep {
			continue
		}
		name, err := parseBackupName("prune "+t.Name, d.Name)
		if err != nil {
			return err
		}
		// As for dumps: only where the base backup's own manifest, read
		// again and verified, says it is a base backup of this archive.
		deleted, err := w.Engine.DeleteIf(ctx, name, nil, func(m *engine.Manifest) error {
			if m.Content != engine.ContentBase || m.Base == nil || m.Base.WALArchive != a.Name {
				return fmt.Errorf("%w: backup %s is not a base backup of WAL archive %s", engine.ErrInvalid, name, a.Name)
			}
			return nil
		})
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("prune %s: %w", t.Name, err)
		}
		if err == nil && len(deleted) == 0 {
			continue
		}
		out.Deleted = append(out.Deleted, d.Name)
		w.Log.WithFields(logrus.Fields{"target": t.Name, "backup_name": d.Name, "wal_archive": a.Name}).Info("pruned a base backup")
	}
	if plan.Cut == (wal.Position{}) || a.WAL == nil {
		return nil // no trusted base backup: every byte of WAL may be needed
	}
	r, err := a.WAL.Prune(ctx, plan.Cut, false)
	out.WAL = &r
	if err != nil {
		return fmt.Errorf("prune %s: %w", t.Name, err)
	}
	if r.Objects > 0 {
		w.Log.WithFields(logrus.Fields{"target": t.Name, "wal_archive": a.Name, "before_lsn": r.BeforeLSN, "objects": r.Objects,
			"bytes": r.Bytes}).Info("pruned WAL no base backup in the pitr_window needs")
	}
	return nil
}
