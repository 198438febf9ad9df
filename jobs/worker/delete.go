package worker

import (
	"context"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// DeleteEngine deletes backups (an *engine.Engine).
type DeleteEngine interface {
	Delete(ctx context.Context, name engine.Name, from []string) ([]string, error)
}

// DeleteWorker runs tasks.TypeBackupDelete: it removes a backup from the
// named stores.
type DeleteWorker struct {
	Engine DeleteEngine
	Ledger *Ledger
}

func (w *DeleteWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.DeletePayload, tasks.DeleteOutcome](rt, w)
}

func (w *DeleteWorker) logFields(p tasks.DeletePayload) logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "stores": p.Stores}
}

// Work deletes the backup.
func (w *DeleteWorker) Work(ctx context.Context, p tasks.DeletePayload) (tasks.DeleteOutcome, error) {
	name, err := parseBackupName("delete", p.BackupName)
	if err != nil {
		return tasks.DeleteOutcome{}, err
	}
	deleted, err := w.Engine.Delete(ctx, name, p.Stores)
	if len(deleted) > 0 {
		w.Ledger.markName(context.WithoutCancel(ctx), p.BackupName, false)
	}
	return tasks.DeleteOutcome{BackupName: p.BackupName, DeletedFrom: deleted}, err
}
