// Package jobs defines the queue's task types, their payloads and the
// handlers workers run for them.
//
// Task type names are part of the wire format between API, scheduler and
// workers of possibly different versions: they are never renamed.
package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/configs"
)

// Task types.
const (
	TypeBackupCreate  = "backup:create"
	TypeBackupRestore = "backup:restore"
	TypeBackupDelete  = "backup:delete"
	TypeBackupVerify  = "backup:verify"
)

// Queues. Restores outrank backups: a restore is usually someone waiting
// on an outage, a backup can start a minute later.
const (
	QueueRestore     = "restore"
	QueueBackup      = "backup"
	QueueMaintenance = "maintenance"
)

// AllQueues lists every queue tasks are put in.
var AllQueues = []string{QueueRestore, QueueBackup, QueueMaintenance}

// BackupPayload is the payload of TypeBackupCreate.
type BackupPayload struct {
	// BackupName is empty for scheduled backups: the worker takes the name
	// from the task ID, which the scheduler derives from the schedule slot.
	BackupName string   `json:"backup_name,omitempty"`
	Format     string   `json:"format"`
	Database   string   `json:"database,omitempty"`
	Stores     []string `json:"stores"`
	Scheduled  bool     `json:"scheduled,omitempty"`
}

// RestorePayload is the payload of TypeBackupRestore.
type RestorePayload struct {
	BackupName string `json:"backup_name"`
	// From is "local", "minio" or empty for the first store holding it.
	From           string `json:"from,omitempty"`
	TargetDatabase string `json:"target_database,omitempty"`
	Clean          bool   `json:"clean,omitempty"`
}

// DeletePayload is the payload of TypeBackupDelete.
type DeletePayload struct {
	BackupName string   `json:"backup_name"`
	Stores     []string `json:"stores"`
}

// VerifyPayload is the payload of TypeBackupVerify.
type VerifyPayload struct {
	BackupName string `json:"backup_name"`
	From       string `json:"from,omitempty"`
}

// TaskOptions are the per-type defaults baked into every task. asynq's own
// defaults (25 retries, 30 minute timeout, results deleted on completion)
// suit none of these tasks.
type TaskOptions struct {
	MaxRetry       int
	Retention      time.Duration
	BackupTimeout  time.Duration
	RestoreTimeout time.Duration
	DeleteTimeout  time.Duration
}

// TaskOptionsFromConfig takes the options from the configuration.
func TaskOptionsFromConfig(cfg configs.Config) TaskOptions {
	return TaskOptions{
		MaxRetry: cfg.TaskMaxRetry, Retention: cfg.TaskRetention,
		BackupTimeout: cfg.BackupTimeout, RestoreTimeout: cfg.RestoreTimeout, DeleteTimeout: cfg.DeleteTimeout,
	}
}

// NewBackupTask returns a backup task for the backup queue.
func NewBackupTask(p BackupPayload, o TaskOptions, extra ...asynq.Option) (*asynq.Task, error) {
	return newTask(TypeBackupCreate, p, append([]asynq.Option{
		asynq.Queue(QueueBackup), asynq.MaxRetry(o.MaxRetry),
		asynq.Timeout(o.BackupTimeout), asynq.Retention(o.Retention),
	}, extra...))
}

// NewRestoreTask returns a restore task for the high-priority queue.
func NewRestoreTask(p RestorePayload, o TaskOptions, extra ...asynq.Option) (*asynq.Task, error) {
	return newTask(TypeBackupRestore, p, append([]asynq.Option{
		asynq.Queue(QueueRestore), asynq.MaxRetry(o.MaxRetry),
		asynq.Timeout(o.RestoreTimeout), asynq.Retention(o.Retention),
	}, extra...))
}

// NewDeleteTask returns a delete task for the maintenance queue.
func NewDeleteTask(p DeletePayload, o TaskOptions, extra ...asynq.Option) (*asynq.Task, error) {
	return newTask(TypeBackupDelete, p, append([]asynq.Option{
		asynq.Queue(QueueMaintenance), asynq.MaxRetry(o.MaxRetry),
		asynq.Timeout(o.DeleteTimeout), asynq.Retention(o.Retention),
	}, extra...))
}

// NewVerifyTask returns a verify task for the maintenance queue. It reads
// the whole archive, so it gets the backup timeout.
func NewVerifyTask(p VerifyPayload, o TaskOptions, extra ...asynq.Option) (*asynq.Task, error) {
	return newTask(TypeBackupVerify, p, append([]asynq.Option{
		asynq.Queue(QueueMaintenance), asynq.MaxRetry(o.MaxRetry),
		asynq.Timeout(o.BackupTimeout), asynq.Retention(o.Retention),
	}, extra...))
}

func newTask(typ string, payload any, opts []asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("%s: encode payload: %w", typ, err)
	}
	return asynq.NewTask(typ, b, opts...), nil
}

// Result is what a task writes through asynq's ResultWriter: progress while
// it runs, and at the end the outcome. The API returns it as the task's
// progress and result.
type Result struct {
	Progress *ProgressInfo `json:"progress,omitempty"`
	Outcome  any           `json:"outcome,omitempty"`
	// Worker identifies the process that ran the task (host:pid).
	Worker string `json:"worker,omitempty"`
}

// ProgressInfo is a snapshot of a running task.
type ProgressInfo struct {
	Phase     string    `json:"phase"`
	Bytes     int64     `json:"bytes"`
	UpdatedAt time.Time `json:"updated_at"`
}
