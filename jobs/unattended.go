package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
)

// ErrUnknownTarget means a task or request names a target that is not
// configured.
var ErrUnknownTarget = fmt.Errorf("%w: unknown target", engine.ErrInvalid)

// PrunePayload is the payload of TypeBackupPrune.
type PrunePayload struct {
	Target string `json:"target"`
}

// Kind implements Payload.
func (PrunePayload) Kind() string { return TypeBackupPrune }

func (p PrunePayload) logFields() logrus.Fields { return logrus.Fields{"target": p.Target} }

func (p PrunePayload) failureEvent() Event { return Event{Event: EventPruneFailed, Target: p.Target} }

// PruneOutcome is the result of a prune task, and the API's dry run.
type PruneOutcome struct {
	Target    string          `json:"target"`
	Deleted   []string        `json:"deleted"`
	Decisions []PruneDecision `json:"decisions"`
}

// Lister lists complete backups (an *engine.Engine).
type Lister interface {
	List(ctx context.Context, from []string) ([]engine.Entry, error)
}

// TaskLister reads the queue (an *asynq.Inspector).
type TaskLister interface {
	ListPendingTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListActiveTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListScheduledTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

// BackupsInUse names the backups that queued, scheduled, retrying or
// running restores, drills and verifies read: pruning must leave them.
func BackupsInUse(q TaskLister) (map[string]bool, error) {
	inUse := map[string]bool{}
	for _, queue := range []string{QueueRestore, QueueMaintenance} {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			q.ListPendingTasks, q.ListActiveTasks, q.ListRetryTasks, q.ListScheduledTasks,
		} {
			tasks, err := list(queue, asynq.PageSize(100000))
			if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
				return nil, fmt.Errorf("backups in use: %w", err)
			}
			for _, t := range tasks {
				switch t.Type {
				case TypeBackupRestore, TypeBackupVerify, TypeBackupDrill:
					var p struct {
						BackupName string `json:"backup_name"`
					}
					if decodeJSON(t.Payload, &p) == nil && p.BackupName != "" {
						inUse[p.BackupName] = true
					}
				}
			}
		}
	}
	return inUse, nil
}

// PlanPrune decides which of target's scheduled backups its retention
// keeps; nothing is deleted.
func PlanPrune(ctx context.Context, l Lister, q TaskLister, t Target) ([]PruneDecision, error) {
	entries, err := l.List(ctx, nil)
	if err != nil {
		return nil, err
	}
	inUse := map[string]bool{}
	if q != nil {
		if inUse, err = BackupsInUse(q); err != nil {
			return nil, err
		}
	}
	var cands []PruneCandidate
	for _, e := range entries {
		if _, scheduled := t.Owns(&e.Manifest); scheduled {
			cands = append(cands, PruneCandidate{Name: e.Name.String(), At: e.StartedAt, InUse: inUse[e.Name.String()]})
		}
	}
	return SelectPrune(cands, t.Retention), nil
}

func (w *Worker) prune(ctx context.Context, p PrunePayload) (PruneOutcome, error) {
	t, ok := w.Targets.Get(p.Target)
	if !ok {
		return PruneOutcome{}, fmt.Errorf("prune: %w %q", ErrUnknownTarget, p.Target)
	}
	out := PruneOutcome{Target: t.Name, Deleted: []string{}}
	if !t.Retention.Enabled() {
		return out, nil
	}
	decisions, err := PlanPrune(ctx, w.Engine, w.Inspector, t)
	if err != nil {
		return out, fmt.Errorf("prune %s: %w", t.Name, err)
	}
	out.Decisions = decisions
	for _, d := range decisions {
		if d.Keep {
			continue
		}
		// The same path as DELETE: manifest first, then archive, in every store.
		name, err := parseBackupName("prune "+t.Name, d.Name)
		if err != nil {
			return out, err
		}
		if _, err := w.Engine.Delete(ctx, name, nil); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return out, fmt.Errorf("prune %s: %w", t.Name, err)
		}
		out.Deleted = append(out.Deleted, d.Name)
		w.markName(context.WithoutCancel(ctx), d.Name, false)
		w.Log.WithFields(logrus.Fields{"target": t.Name, "backup_name": d.Name}).Info("pruned a scheduled backup")
	}
	return out, nil
}

// DrillPayload is the payload of TypeBackupDrill.
type DrillPayload struct {
	Target string `json:"target"`
	// BackupName is filled in by the worker (the target's newest good
	// backup) before the drill runs, so that pruning sees it in use.
	BackupName string `json:"backup_name,omitempty"`
}

// Kind implements Payload.
func (DrillPayload) Kind() string { return TypeBackupDrill }

func (p DrillPayload) logFields() logrus.Fields {
	return logrus.Fields{"target": p.Target, "backup_name": p.BackupName}
}

func (p DrillPayload) failureEvent() Event {
	return Event{Event: EventDrillFailed, Target: p.Target, BackupName: p.BackupName}
}

// newestOf returns the target's newest complete backup.
func newestOf(ctx context.Context, l Lister, t Target) (*engine.Manifest, error) {
	entries, err := l.List(ctx, nil)
	if err != nil {
		return nil, err
	}
	var newest *engine.Manifest
	for i := range entries {
		m := &entries[i].Manifest
		if owned, _ := t.Owns(m); owned && (newest == nil || m.FinishedAt.After(newest.FinishedAt)) {
			newest = m
		}
	}
	if newest == nil {
		return nil, fmt.Errorf("%w: target %s has no backup", engine.ErrNotFound, t.Name)
	}
	return newest, nil
}

func (w *Worker) drill(ctx context.Context, p DrillPayload) (DrillResult, error) {
	t, ok := w.Targets.Get(p.Target)
	if !ok {
		return DrillResult{}, fmt.Errorf("drill: %w %q", ErrUnknownTarget, p.Target)
	}
	taskID, _ := taskIDOf(ctx)
	res := DrillResult{Target: t.Name, TaskID: taskID, At: time.Now().UTC(), BackupName: p.BackupName}
	var err error
	if res.BackupName == "" {
		var m *engine.Manifest
		if m, err = newestOf(ctx, w.Engine, t); err == nil {
			res.BackupName = m.Name.String()
		}
	}
	var name engine.Name
	if err == nil {
		name, err = parseBackupName("drill", res.BackupName)
	}
	if err == nil {
		scratch := "pgbackup_drill_" + t.Name + "_" + res.At.Format("20060102150405")
		var rep *engine.DrillReport
		// On the target's own server, where its backups come from.
		rep, err = w.Engine.Drill(ctx, name, scratch, t.Server, progressOf(ctx))
		if rep != nil {
			res.RTOSeconds = rep.RTO.Seconds()
			res.BackupAgeSeconds = res.At.Sub(rep.Manifest.FinishedAt).Seconds()
			res.Tables = rep.Tables
		}
	}
	res.Passed = err == nil
	if err != nil {
		res.Error = Classify(err)
	}
	// Every final outcome is recorded, a pass or a failure; a failure that
	// will be retried is not yet an outcome.
	if err == nil || finalAttempt(ctx, err) {
		if rerr := w.State.RecordDrill(context.WithoutCancel(ctx), res); rerr != nil {
			w.Log.WithError(rerr).Warn("could not record the drill result")
		}
	}
	return res, err
}

// finalAttempt reports whether err ends the task: it is never retried, or
// this was the last attempt.
func finalAttempt(ctx context.Context, err error) bool {
	if Permanent(err) {
		return true
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	return ok && retried >= maxRetry
}
