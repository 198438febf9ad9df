package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// BaseBackupEngine takes base backups (an *engine.Engine).
type BaseBackupEngine interface {
	BaseBackup(ctx context.Context, req engine.BaseBackupRequest) (*engine.Manifest, error)
}

// WALArchive is what a base backup needs of the WAL archive of its
// target's server: the archive's name (recorded in the manifest), the
// server with the archive's own credentials (its user needs
// REPLICATION), and the archive's stores (every store when empty), which
// the base backup is written to.
type WALArchive struct {
	Name   string
	Conn   pgtool.Conn
	Stores []string
}

// BaseBackupWorker runs tasks.TypeBaseBackup: a base backup of the server
// of a target with pitr, into its WAL archive's stores.
type BaseBackupWorker struct {
	Engine BaseBackupEngine
	// Targets are the configured targets, to tell an unknown target from
	// one without pitr.
	Targets *policy.TargetSet
	// WALArchiveOf is the WAL archive of target's server; ok is false when
	// the target has no pitr.
	WALArchiveOf func(target string) (a WALArchive, ok bool)
	// Ledger marks the new name for the API's name indexes and, after a
	// scheduled base backup, enqueues the target's prune (its
	// pitr_window); base backups are not the target's backups for the
	// RPO, so nothing else is recorded.
	Ledger *Ledger
}

func (w *BaseBackupWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.BaseBackupPayload, *engine.Manifest](rt, w)
}

// resolve names a base backup the payload leaves unnamed: a scheduled
// one after its task ID, which the scheduler derives from the slot (so a
// retry finds its own work), any other after the time it starts.
func (w *BaseBackupWorker) resolve(_ context.Context, p tasks.BaseBackupPayload, taskID string) (tasks.BaseBackupPayload, error) {
	switch {
	case p.BackupName != "":
	case p.Scheduled:
		p.BackupName = taskID
	default:
		p.BackupName = policy.BaseBackupName(p.Target, time.Now())
	}
	return p, nil
}

func (w *BaseBackupWorker) logFields(p tasks.BaseBackupPayload) logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "target": p.Target, "scheduled": p.Scheduled}
}

func (w *BaseBackupWorker) failureEvent(p tasks.BaseBackupPayload) alert.Event {
	return alert.Event{Event: alert.EventBackupFailed, Target: p.Target, BackupName: p.BackupName}
}

// Work takes the base backup; its result is the manifest's summary, as a
// backup's.
func (w *BaseBackupWorker) Work(ctx context.Context, p tasks.BaseBackupPayload) (*engine.Manifest, error) {
	arch, err := w.archiveOf(p.Target)
	if err != nil {
		return nil, err
	}
	name, err := parseBackupName("base backup", p.BackupName)
	if err != nil {
		return nil, err
	}
	conn := arch.Conn
	m, err := w.Engine.BaseBackup(ctx, engine.BaseBackupRequest{Name: name, Server: &conn, WALArchive: arch.Name,
		Stores: arch.Stores, Target: p.Target, Scheduled: p.Scheduled, TaskID: taskIDOf(ctx), Progress: progressOf(ctx)})
	if err != nil {
		return nil, err
	}
	w.Ledger.markName(context.WithoutCancel(ctx), m.Name.String(), true)
	// A new scheduled base backup may let the pitr_window drop an older
	// one and the WAL before it.
	w.Ledger.pruneAfter(context.WithoutCancel(ctx), w.Targets, p.Target, p.Scheduled)
	return m.Summary(), nil
}

// archiveOf is the WAL archive of target's server. A target that is not
// configured, or has no pitr, is ErrInvalid: retrying cannot help.
func (w *BaseBackupWorker) archiveOf(target string) (WALArchive, error) {
	if _, ok := w.Targets.Get(target); !ok {
		return WALArchive{}, fmt.Errorf("base backup: %w %q", policy.ErrUnknownTarget, target)
	}
	if w.WALArchiveOf != nil {
		if a, ok := w.WALArchiveOf(target); ok {
			return a, nil
		}
	}
	return WALArchive{}, fmt.Errorf("base backup: %w: target %s has no pitr: a base backup is the start of a point-in-time recovery, which needs the server's WAL archive (set pitr: true)",
		engine.ErrInvalid, target)
}
