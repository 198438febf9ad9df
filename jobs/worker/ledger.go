package worker

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// BackupState is where finished backups are counted and names marked (a
// *coord.State).
type BackupState interface {
	RecordBackup(ctx context.Context, target, outcome, name string, finished time.Time, dur time.Duration, size int64) error
	MarkCreated(ctx context.Context, name string) error
	MarkDeleted(ctx context.Context, name string) error
}

// Ledger records what backup, delete and prune tasks changed, for the
// other processes: counters and newest backups for metrics and the RPO,
// name marks for the API's name indexes, and the prune that follows a
// scheduled backup. None of it may fail the task: failures are logged.
type Ledger struct {
	// State records; nil records nothing.
	State BackupState
	// Queue enqueues the prune after a scheduled backup, with TaskOptions;
	// nil enqueues none.
	Queue       tasks.Enqueuer
	TaskOptions tasks.Options
	// PITR names the pitr targets (see PruneWorker.PITR): their prune
	// after a scheduled backup (a base backup's included) also applies
	// their pitr_window, so it runs even without a dumps' retention.
	PITR map[string]policy.PITRArchive
	Log  *logrus.Entry
}

// record counts a backup of target in the shared state; metrics read it.
func (l *Ledger) record(ctx context.Context, target, outcome, name string, at time.Time, d time.Duration, size int64) {
	if l == nil || l.State == nil {
		return
	}
	if err := l.State.RecordBackup(ctx, target, outcome, name, at, d, size); err != nil {
		l.Log.WithError(err).Warn("could not record the backup in redis")
	}
}

// markName tells the API's name indexes that a backup was created or
// deleted, before their next listing can see it.
func (l *Ledger) markName(ctx context.Context, name string, created bool) {
	if l == nil || l.State == nil {
		return
	}
	mark := l.State.MarkDeleted
	if created {
		mark = l.State.MarkCreated
	}
	if err := mark(ctx, name); err != nil {
		l.Log.WithError(err).WithField("backup_name", name).Warn("could not mark the name in redis")
	}
}

// backupFailed counts a backup that failed for good.
func (l *Ledger) backupFailed(ctx context.Context, target, name string) {
	l.record(ctx, target, coord.OutcomeFailed, name, time.Time{}, 0, 0)
}

// backupDone records a completed backup.
func (l *Ledger) backupDone(ctx context.Context, target, name string, at time.Time, d time.Duration, size int64) {
	l.record(ctx, target, coord.OutcomeSuccess, name, at, d, size)
	l.markName(ctx, name, true)
}

// pruneAfter prunes right after a scheduled backup, on the maintenance
// queue: it may have pushed an older one out of the target's retention,
// or (a base backup) out of its pitr_window.
func (l *Ledger) pruneAfter(ctx context.Context, targets *policy.TargetSet, target string, scheduled bool) {
	t, ok := targets.Get(target)
	if !ok || !scheduled || l == nil || l.Queue == nil {
		return
	}
	if _, pitr := l.PITR[t.Name]; !t.Retention.Enabled() && !pitr {
		return
	}
	if task, err := tasks.NewTask(tasks.PrunePayload{Target: t.Name}, l.TaskOptions); err == nil {
		if _, err := l.Queue.EnqueueContext(ctx, task); err != nil {
			l.Log.WithError(err).WithField("target", t.Name).Warn("could not enqueue the prune after a scheduled backup")
		}
	}
}

// serverOf is the PostgreSQL server of a configured target that names its
// own, nil for the configured server (or an unknown target).
func serverOf(targets *policy.TargetSet, target string) *pgtool.Conn {
	if target == "" {
		return nil
	}
	if t, ok := targets.Get(target); ok {
		return t.Server
	}
	return nil
}
