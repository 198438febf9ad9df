package worker

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// BackupEngine takes database backups (an *engine.Engine).
type BackupEngine interface {
	Backup(ctx context.Context, req engine.BackupRequest) (*engine.Manifest, error)
}

// BackupWorker runs tasks.TypeBackupCreate: it dumps a database into the
// stores.
type BackupWorker struct {
	Engine BackupEngine
	// Targets are the configured targets (their servers and retention).
	Targets *policy.TargetSet
	Ledger  *Ledger
	// Alerts announces successful backups (when configured to).
	Alerts *alert.Alerter
}

func (w *BackupWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.BackupPayload, *engine.Manifest](rt, w)
}

// resolve names a scheduled backup after its task ID, which the scheduler
// derives from the slot.
func (w *BackupWorker) resolve(_ context.Context, p tasks.BackupPayload, taskID string) (tasks.BackupPayload, error) {
	if p.BackupName == "" && p.Scheduled {
		p.BackupName = taskID
	}
	return p, nil
}

func (w *BackupWorker) logFields(p tasks.BackupPayload) logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "database": p.Database, "format": p.Format, "target": p.Target}
}

func (w *BackupWorker) failureEvent(p tasks.BackupPayload) alert.Event {
	return alert.Event{Event: alert.EventBackupFailed, Target: p.Target, BackupName: p.BackupName}
}

// Work takes the backup.
func (w *BackupWorker) Work(ctx context.Context, p tasks.BackupPayload) (*engine.Manifest, error) {
	taskID := taskIDOf(ctx)
	start := time.Now()
	req, err := parseBackupPayload(p)
	var m *engine.Manifest
	if err == nil {
		req.Server, req.Stores, req.Target, req.Scheduled = serverOf(w.Targets, p.Target), p.Stores, p.Target, p.Scheduled
		req.IncludeGlobals, req.TaskID, req.Progress = p.IncludeGlobals, taskID, progressOf(ctx)
		m, err = w.Engine.Backup(ctx, req)
	}
	bg := context.WithoutCancel(ctx)
	if err != nil {
		if finalAttempt(ctx, err) {
			w.Ledger.backupFailed(bg, p.Target, p.BackupName)
		}
		return nil, err
	}
	w.Ledger.backupDone(bg, p.Target, m.Name.String(), m.FinishedAt, time.Since(start), m.SizeBytes)
	w.Alerts.Emit(bg, alert.Event{Event: alert.EventBackupSucceeded, Target: p.Target, BackupName: m.Name.String(), TaskID: taskID})
	w.Ledger.pruneAfter(bg, w.Targets, p.Target, p.Scheduled)
	// The result is kept in Redis and shown by the API: without the chunk
	// sums, which grow with the archive.
	return m.Summary(), nil
}
