package worker

import (
	"context"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// VerifyEngine re-reads whole archives (an *engine.Engine).
type VerifyEngine interface {
	Verify(ctx context.Context, name engine.Name, from string, allowUnsigned bool) (*engine.Manifest, error)
}

// VerifyWorker runs tasks.TypeBackupVerify: it re-reads a whole archive and
// checks it against its manifest.
type VerifyWorker struct {
	Engine VerifyEngine
}

func (w *VerifyWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.VerifyPayload, tasks.VerifyOutcome](rt, w)
}

func (w *VerifyWorker) logFields(p tasks.VerifyPayload) logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "from": p.From}
}

// Work verifies the backup.
func (w *VerifyWorker) Work(ctx context.Context, p tasks.VerifyPayload) (tasks.VerifyOutcome, error) {
	name, err := parseBackupName("verify", p.BackupName)
	if err != nil {
		return tasks.VerifyOutcome{}, err
	}
	m, err := w.Engine.Verify(ctx, name, p.From, p.AllowUnsigned)
	if err != nil {
		return tasks.VerifyOutcome{}, err
	}
	return tasks.VerifyOutcome{BackupName: p.BackupName, Verified: true, SHA256: m.SHA256, SizeBytes: m.SizeBytes,
		RowCountsChecked: m.RowCounts != nil}, nil
}
