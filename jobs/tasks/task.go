package tasks

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hibiken/asynq"
)

// Payload is a task's arguments: a plain struct with snake_case JSON tags.
// TaskType is its task type, which is never renamed once deployed.
type Payload interface {
	TaskType() string
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

// spec is what every task of one type gets: its queue and its timeout.
type spec struct {
	queue   string
	timeout func(Options) time.Duration
}

func backupTimeout(o Options) time.Duration  { return o.BackupTimeout }
func alertTimeout(Options) time.Duration     { return time.Minute }
func restoreTimeout(o Options) time.Duration { return o.RestoreTimeout }
func deleteTimeout(o Options) time.Duration  { return o.DeleteTimeout }

// specs is the task table: one line per task type.
var specs = map[string]spec{
	// A backup dumps a database into the stores.
	TypeBackupCreate: {QueueBackup, backupTimeout},
	// A restore has the high-priority queue.
	TypeBackupRestore: {QueueRestore, restoreTimeout},
	TypeBackupDelete:  {QueueMaintenance, deleteTimeout},
	// A verify re-reads a whole archive, so it gets the backup timeout.
	TypeBackupVerify: {QueueMaintenance, backupTimeout},
	TypeBackupPrune:  {QueueMaintenance, deleteTimeout},
	// A drill restores a target's newest backup into a scratch database.
	TypeBackupDrill:   {QueueMaintenance, restoreTimeout},
	TypeAlertDeliver:  {QueueAlerts, alertTimeout},
	TypeBucketBackup:  {QueueBackup, backupTimeout},
	TypeBucketRestore: {QueueRestore, restoreTimeout},
	// An adoption reads every old archive in full (checksum, pg_restore
	// --list), so it gets the backup timeout.
	TypeBackupAdopt: {QueueMaintenance, backupTimeout},
	// A base backup copies a whole server: a backup like any other.
	TypeBaseBackup: {QueueBackup, backupTimeout},
}

// Types lists every task type, sorted.
func Types() []string { return slices.Sorted(maps.Keys(specs)) }

// QueueOf is the queue tasks of a type go to ("" for an unknown type).
func QueueOf(taskType string) string { return specs[taskType].queue }

// HeaderRequestID is the task header carrying the X-Request-ID of the API
// request that made the task; workers log it with every line about it.
const HeaderRequestID = "request_id"

// NewTask encodes p as a task of its type with that type's queue, timeout,
// retries and retention; extra options are applied after them.
func NewTask(p Payload, o Options, extra ...asynq.Option) (*asynq.Task, error) {
	return NewTaskWithRequestID(p, o, "", extra...)
}

// NewTaskWithRequestID is NewTask for the API request requestID (none
// when empty).
func NewTaskWithRequestID(p Payload, o Options, requestID string, extra ...asynq.Option) (*asynq.Task, error) {
	s, ok := specs[p.TaskType()]
	if !ok {
		return nil, fmt.Errorf("new task: unknown task type %q", p.TaskType())
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%s: encode payload: %w", p.TaskType(), err)
	}
	var headers map[string]string
	if requestID != "" {
		headers = map[string]string{HeaderRequestID: requestID}
	}
	opts := []asynq.Option{asynq.Queue(s.queue), asynq.MaxRetry(o.MaxRetry),
		asynq.Timeout(s.timeout(o)), asynq.Retention(o.Retention)}
	return asynq.NewTaskWithHeaders(p.TaskType(), b, headers, append(opts, extra...)...), nil
}

// ReservationTTL is long enough to cover every attempt of the longest task.
func ReservationTTL(o Options) time.Duration {
	return max(o.BackupTimeout, o.RestoreTimeout)*time.Duration(o.MaxRetry+1) + time.Hour
}
