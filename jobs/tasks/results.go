package tasks

import (
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
)

// Result is what a task writes through asynq's ResultWriter: progress while
// it runs, and at the end the outcome. The API returns it as the task's
// progress and result.
type Result struct {
	Progress *ProgressInfo `json:"progress,omitempty"`
	Outcome  any           `json:"outcome,omitempty"`
	// Worker identifies the process that ran the task (host:pid).
	Worker string `json:"worker,omitempty"`
	// StartedAt is when the worker began this attempt: with the time the
	// task was queued it gives how long it waited for a worker.
	StartedAt time.Time `json:"started_at,omitzero"`
}

// ProgressInfo is a snapshot of a running task.
type ProgressInfo struct {
	Phase     string    `json:"phase"`
	Bytes     int64     `json:"bytes"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DeleteOutcome is the result of a delete task.
type DeleteOutcome struct {
	BackupName  string   `json:"backup_name"`
	DeletedFrom []string `json:"deleted_from"`
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

// DrillResult is one restore drill: the result of a drill task, and what
// the drill history keeps.
type DrillResult struct {
	Target     string    `json:"target"`
	BackupName string    `json:"backup_name"`
	TaskID     string    `json:"task_id,omitempty"`
	At         time.Time `json:"at"`
	Passed     bool      `json:"passed"`
	// RTOSeconds is the measured recovery time: download, restore, check.
	RTOSeconds float64 `json:"rto_seconds"`
	// BackupAgeSeconds is how old the backup was when the drill ran: the
	// data a real recovery at that moment would have lost.
	BackupAgeSeconds float64 `json:"backup_age_seconds"`
	Tables           int     `json:"tables_checked"`
	Error            string  `json:"error,omitempty"`
}

// AdoptOutcome is the result of an adopt task: what was (or, dry, would
// be) adopted and what was skipped, with why.
type AdoptOutcome struct {
	engine.AdoptResult
	// PruneWouldDelete, in a dry run with ADOPTED_RETENTION on, is what
	// the next prune of each target would delete once these are adopted.
	PruneWouldDelete map[string][]string `json:"prune_would_delete,omitempty"`
}
