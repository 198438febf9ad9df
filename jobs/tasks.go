// Package jobs defines the queue's task types, their payloads and what a
// worker does for each.
//
// Task type names are part of the wire format between API, scheduler and
// workers of possibly different versions: they are never renamed.
//
// Adding a task type takes one payload struct (with a Kind method), one
// function, and one define line in the table at the bottom of this file;
// the generic adapter in task.go does the rest (decode, log, progress,
// reservations, cancellation, retry classification).
package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
)

// Task types.
const (
	TypeBackupCreate  = "backup:create"
	TypeBackupRestore = "backup:restore"
	TypeBackupDelete  = "backup:delete"
	TypeBackupVerify  = "backup:verify"
	TypeBackupPrune   = "backup:prune"
	TypeBackupDrill   = "backup:drill"
	TypeAlertDeliver  = "alert:deliver"
	TypeBucketBackup  = "bucket:backup"
	TypeBucketRestore = "bucket:restore"
)

// Queues. Restores outrank backups: a restore is usually someone waiting
// on an outage, a backup can start a minute later.
const (
	QueueRestore     = "restore"
	QueueBackup      = "backup"
	QueueMaintenance = "maintenance"
	// QueueAlerts holds webhook deliveries. Schedulers serve it as well as
	// workers, so that alerts still go out when every worker is down,
	// which is when the RPO alert matters most.
	QueueAlerts = "alerts"
)

// WeightedQueues are the queues whose priorities QUEUE_WEIGHTS sets.
var WeightedQueues = []string{QueueRestore, QueueBackup, QueueMaintenance}

// AllQueues lists every queue tasks are put in.
var AllQueues = []string{QueueRestore, QueueBackup, QueueMaintenance, QueueAlerts}

// BackupPayload is the payload of TypeBackupCreate.
type BackupPayload struct {
	// BackupName is empty for scheduled backups: the worker takes the name
	// from the task ID, which the scheduler derives from the schedule slot.
	BackupName string   `json:"backup_name,omitempty"`
	Format     string   `json:"format"`
	Database   string   `json:"database,omitempty"`
	Stores     []string `json:"stores"`
	Scheduled  bool     `json:"scheduled,omitempty"`
	// Target is the target the backup is for (scheduled backups always
	// name one).
	Target string `json:"target,omitempty"`
	// IncludeGlobals also stores pg_dumpall --globals-only beside it.
	IncludeGlobals bool `json:"include_globals,omitempty"`
}

// Kind implements Payload.
func (BackupPayload) Kind() string { return TypeBackupCreate }

func (p BackupPayload) resolve(_ context.Context, _ *Worker, taskID string) (BackupPayload, error) {
	if p.BackupName == "" && p.Scheduled {
		p.BackupName = taskID
	}
	return p, nil
}

func (p BackupPayload) reservations() []reservation { return []reservation{{KindName, p.BackupName}} }

func (p BackupPayload) logFields() logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "database": p.Database, "format": p.Format, "target": p.Target}
}

func (p BackupPayload) failureEvent() Event {
	return Event{Event: EventBackupFailed, Target: p.Target, BackupName: p.BackupName}
}

func (w *Worker) backup(ctx context.Context, p BackupPayload) (*engine.Manifest, error) {
	taskID, _ := taskIDOf(ctx)
	start := time.Now()
	name, err := parseBackupName("backup", p.BackupName)
	var m *engine.Manifest
	if err == nil {
		m, err = w.Engine.Backup(ctx, engine.BackupRequest{
			Name: name, Server: w.serverOf(p.Target), Database: p.Database, Format: engine.Format(p.Format), Stores: p.Stores,
			Target: p.Target, Scheduled: p.Scheduled, IncludeGlobals: p.IncludeGlobals, TaskID: taskID, Progress: progressOf(ctx),
		})
	}
	bg := context.WithoutCancel(ctx)
	if err != nil {
		if finalAttempt(ctx, err) {
			w.record(bg, p.Target, OutcomeFailed, p.BackupName, time.Time{}, 0, 0)
		}
		return nil, err
	}
	w.record(bg, p.Target, OutcomeSuccess, m.Name.String(), m.FinishedAt, time.Since(start), m.SizeBytes)
	w.markName(bg, m.Name.String(), true)
	w.Alerts.Emit(bg, Event{Event: EventBackupSucceeded, Target: p.Target, BackupName: m.Name.String(), TaskID: taskID})
	w.afterScheduled(bg, p.Target, p.Scheduled)
	return m, nil
}

// afterScheduled prunes right after a scheduled backup, on the maintenance
// queue: it may have pushed an older one out of the target's retention.
func (w *Worker) afterScheduled(ctx context.Context, target string, scheduled bool) {
	t, ok := w.Targets.Get(target)
	if !ok || !scheduled || !t.Retention.Enabled() || w.Queue == nil {
		return
	}
	if task, err := NewTask(PrunePayload{Target: t.Name}, w.TaskOptions); err == nil {
		if _, err := w.Queue.EnqueueContext(ctx, task); err != nil {
			w.Log.WithError(err).WithField("target", t.Name).Warn("could not enqueue the prune after a scheduled backup")
		}
	}
}

// record counts a backup in the shared state; metrics read it.
func (w *Worker) record(ctx context.Context, target, outcome, name string, at time.Time, d time.Duration, size int64) {
	if w.State == nil {
		return
	}
	if err := w.State.RecordBackup(ctx, target, outcome, name, at, d, size); err != nil {
		w.Log.WithError(err).Warn("could not record the backup in redis")
	}
}

// RestorePayload is the payload of TypeBackupRestore.
type RestorePayload struct {
	BackupName string `json:"backup_name"`
	// From names the store to read; empty means the first holding it.
	From           string `json:"from,omitempty"`
	TargetDatabase string `json:"target_database,omitempty"`
	Clean          bool   `json:"clean,omitempty"`
	Replace        bool   `json:"replace,omitempty"`
	AllowUnsigned  bool   `json:"allow_unsigned,omitempty"`
	RestoreGlobals bool   `json:"restore_globals,omitempty"`
	// Databases chooses databases of a whole-server backup (all when
	// empty); each is restored under its own name.
	Databases []string `json:"databases,omitempty"`
	// Target restores into that target's server (its database by
	// default). Without it a backup goes back to the server it was taken
	// from: its target's, if that target names its own server.
	Target string `json:"target,omitempty"`
}

// Kind implements Payload.
func (RestorePayload) Kind() string { return TypeBackupRestore }

// resolve defaults the target to the database the backup was taken from,
// or a whole-server backup's databases to all it holds, before the
// reservations on them are taken.
func (p RestorePayload) resolve(ctx context.Context, w *Worker, _ string) (RestorePayload, error) {
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
		if w.serverOf(m.Target) != nil {
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

func (p RestorePayload) reservations() []reservation {
	key := func(db string) string { return RestoreKey(p.Target, db) }
	if len(p.Databases) > 0 {
		res := make([]reservation, 0, len(p.Databases))
		for _, d := range p.Databases {
			res = append(res, reservation{KindRestore, key(d)})
		}
		return res
	}
	return []reservation{{KindRestore, key(p.TargetDatabase)}}
}

func (p RestorePayload) logFields() logrus.Fields {
	f := logrus.Fields{"backup_name": p.BackupName, "database": p.TargetDatabase, "clean": p.Clean,
		"replace": p.Replace, "allow_unsigned": p.AllowUnsigned}
	if len(p.Databases) > 0 {
		f["databases"] = p.Databases
	}
	return f
}

func (w *Worker) restore(ctx context.Context, p RestorePayload) (*engine.RestoreResult, error) {
	name, err := parseBackupName("restore", p.BackupName)
	if err != nil {
		return nil, err
	}
	return w.Engine.Restore(ctx, engine.RestoreRequest{
		Name: name, Server: w.serverOf(p.Target), From: p.From, TargetDatabase: p.TargetDatabase, Clean: p.Clean,
		Replace: p.Replace, AllowUnsigned: p.AllowUnsigned, RestoreGlobals: p.RestoreGlobals, Databases: p.Databases, Progress: progressOf(ctx),
	})
}

// DeletePayload is the payload of TypeBackupDelete.
type DeletePayload struct {
	BackupName string   `json:"backup_name"`
	Stores     []string `json:"stores"`
}

// Kind implements Payload.
func (DeletePayload) Kind() string { return TypeBackupDelete }

func (p DeletePayload) logFields() logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "stores": p.Stores}
}

// DeleteOutcome is the result of a delete task.
type DeleteOutcome struct {
	BackupName  string   `json:"backup_name"`
	DeletedFrom []string `json:"deleted_from"`
}

func (w *Worker) delete(ctx context.Context, p DeletePayload) (DeleteOutcome, error) {
	name, err := parseBackupName("delete", p.BackupName)
	if err != nil {
		return DeleteOutcome{}, err
	}
	deleted, err := w.Engine.Delete(ctx, name, p.Stores)
	if len(deleted) > 0 {
		w.markName(context.WithoutCancel(ctx), p.BackupName, false)
	}
	return DeleteOutcome{BackupName: p.BackupName, DeletedFrom: deleted}, err
}

// markName tells the API's name indexes that a backup was created or
// deleted, before their next listing can see it.
func (w *Worker) markName(ctx context.Context, name string, created bool) {
	if w.State == nil {
		return
	}
	mark := w.State.MarkDeleted
	if created {
		mark = w.State.MarkCreated
	}
	if err := mark(ctx, name); err != nil {
		w.Log.WithError(err).WithField("backup_name", name).Warn("could not mark the name in redis")
	}
}

// VerifyPayload is the payload of TypeBackupVerify.
type VerifyPayload struct {
	BackupName    string `json:"backup_name"`
	From          string `json:"from,omitempty"`
	AllowUnsigned bool   `json:"allow_unsigned,omitempty"`
}

// Kind implements Payload.
func (VerifyPayload) Kind() string { return TypeBackupVerify }

func (p VerifyPayload) logFields() logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "from": p.From}
}

// VerifyOutcome is the result of a verify task.
type VerifyOutcome struct {
	BackupName string `json:"backup_name"`
	Verified   bool   `json:"verified"`
	SHA256     string `json:"sha256"`
	SizeBytes  int64  `json:"size_bytes"`
	// RowCountsChecked says the archive's rows per table matched the
	// manifest's counts.
	RowCountsChecked bool `json:"row_counts_checked"`
}

func (w *Worker) verify(ctx context.Context, p VerifyPayload) (VerifyOutcome, error) {
	name, err := parseBackupName("verify", p.BackupName)
	if err != nil {
		return VerifyOutcome{}, err
	}
	m, err := w.Engine.Verify(ctx, name, p.From, p.AllowUnsigned)
	if err != nil {
		return VerifyOutcome{}, err
	}
	return VerifyOutcome{BackupName: p.BackupName, Verified: true, SHA256: m.SHA256, SizeBytes: m.SizeBytes,
		RowCountsChecked: m.RowCounts != nil}, nil
}

// Options are the per-class limits baked into every task. asynq's own
// defaults (25 retries, 30 minute timeout, results deleted on completion)
// suit none of these tasks.
type Options struct {
	MaxRetry       int
	Retention      time.Duration
	BackupTimeout  time.Duration
	RestoreTimeout time.Duration
	DeleteTimeout  time.Duration
}

func backupTimeout(o Options) time.Duration  { return o.BackupTimeout }
func alertTimeout(Options) time.Duration     { return time.Minute }
func restoreTimeout(o Options) time.Duration { return o.RestoreTimeout }
func deleteTimeout(o Options) time.Duration  { return o.DeleteTimeout }

// The task table: one line per task type, giving its queue, its timeout
// and the function that does the work.
var (
	// Backup dumps a database into the stores.
	Backup = define(QueueBackup, backupTimeout, (*Worker).backup)
	// Restore restores a backup into a database; it has the high-priority queue.
	Restore = define(QueueRestore, restoreTimeout, (*Worker).restore)
	// Delete removes a backup from the named stores.
	Delete = define(QueueMaintenance, deleteTimeout, (*Worker).delete)
	// Verify re-reads a whole archive, so it gets the backup timeout.
	Verify = define(QueueMaintenance, backupTimeout, (*Worker).verify)
	// Prune deletes a target's scheduled backups its retention lets go.
	Prune = define(QueueMaintenance, deleteTimeout, (*Worker).prune)
	// Drill restores a target's newest backup into a scratch database,
	// checks it and measures the recovery time.
	Drill = define(QueueMaintenance, restoreTimeout, (*Worker).drill)
	// AlertDeliver posts one event to one webhook.
	AlertDeliver = define(QueueAlerts, alertTimeout, (*Worker).deliverAlert)
	// BucketBackup streams a MinIO bucket into one archive in the stores.
	BucketBackup = define(QueueBackup, backupTimeout, (*Worker).bucketBackup)
	// BucketRestore writes a bucket backup's objects back.
	BucketRestore = define(QueueRestore, restoreTimeout, (*Worker).bucketRestore)
)

// RestoreKey is the reservation that keeps two restores out of one
// database: the database's name, qualified by the target whose own server
// it is on (the same name on two servers is two databases).
func RestoreKey(target, db string) string {
	if target != "" {
		return target + "/" + db
	}
	return db
}

// serverOf is the PostgreSQL server of a target that names its own, nil
// for the configured server (or an unknown target).
func (w *Worker) serverOf(target string) *pgtool.Conn {
	if target == "" || w.Targets == nil {
		return nil
	}
	if t, ok := w.Targets.Get(target); ok {
		return t.Server
	}
	return nil
}

// parseBackupName parses a payload's backup name where the worker decodes
// the payload: the engine takes only parsed names.
func parseBackupName(op, s string) (engine.Name, error) {
	name, err := engine.ParseName(s)
	if err != nil {
		return engine.Name{}, fmt.Errorf("%s: %w", op, err)
	}
	return name, nil
}
