package worker

import (
	"context"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// RestoreEngine finds and restores backups (an *engine.Engine).
type RestoreEngine interface {
	Find(ctx context.Context, name engine.Name, from []string) (*engine.Manifest, []string, error)
	Restore(ctx context.Context, req engine.RestoreRequest) (*engine.RestoreResult, error)
}

// RestoreWorker runs tasks.TypeBackupRestore: it restores a backup into a
// database.
type RestoreWorker struct {
	Engine RestoreEngine
	// Targets are the configured targets (their servers).
	Targets *policy.TargetSet
}

func (w *RestoreWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.RestorePayload, *engine.RestoreResult](rt, w)
}

// resolve defaults the database restored into to the one the backup was
// taken from, or a whole-server backup's databases to all it holds, before
// the reservations on them are taken.
func (w *RestoreWorker) resolve(ctx context.Context, p tasks.RestorePayload, _ string) (tasks.RestorePayload, error) {
	name, err := parseBackupName("restore", p.BackupName)
	if err != nil {
		return p, err
	}
	var from []string
	if p.From != "" {
		from = []string{p.From}
	}
	var m *engine.Manifest
	if p.Target == "" {
		if m, _, err = w.Engine.Find(ctx, name, from); err != nil {
			return p, err
		}
		if serverOf(w.Targets, m.Target) != nil {
			p.Target = m.Target
		}
	}
	if p.TargetDatabase == "" && len(p.Databases) == 0 {
		if m == nil {
			if m, _, err = w.Engine.Find(ctx, name, from); err != nil {
				return p, err
			}
		}
		if m.Content != engine.ContentServer {
			p.TargetDatabase = m.Database
			return p, nil
		}
		for _, d := range m.Databases {
			p.Databases = append(p.Databases, d.Database)
		}
	}
	return p, nil
}

func (w *RestoreWorker) logFields(p tasks.RestorePayload) logrus.Fields {
	f := logrus.Fields{"backup_name": p.BackupName, "database": p.TargetDatabase, "clean": p.Clean,
		"replace": p.Replace, "allow_unsigned": p.AllowUnsigned}
	if len(p.Databases) > 0 {
		f["databases"] = p.Databases
	}
	return f
}

// Work restores the backup.
func (w *RestoreWorker) Work(ctx context.Context, p tasks.RestorePayload) (*engine.RestoreResult, error) {
	req, err := parseRestorePayload(p)
	if err != nil {
		return nil, err
	}
	req.Server, req.From, req.Clean, req.Replace = serverOf(w.Targets, p.Target), p.From, p.Clean, p.Replace
	req.AllowUnsigned, req.RestoreGlobals, req.Progress = p.AllowUnsigned, p.RestoreGlobals, progressOf(ctx)
	return w.Engine.Restore(ctx, req)
}
