package tasks

import "fmt"

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
	TypeBackupAdopt   = "backup:adopt"
	// TypeBaseBackup copies a whole server (pg_basebackup) for
	// point-in-time recovery: the start a restore replays archived WAL on.
	TypeBaseBackup = "backup:base"
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

// CheckQueueWeights reports a queue that tasks go to but that has no
// weight (a worker would never take its tasks), or a weight below 1.
func CheckQueueWeights(weights map[string]int) error {
	for _, q := range WeightedQueues {
		if weights[q] < 1 {
			return fmt.Errorf("queue %q needs a weight of at least 1 (every task queue needs one)", q)
		}
	}
	for q, w := range weights {
		if w < 1 {
			return fmt.Errorf("queue %q: weight %d must be at least 1", q, w)
		}
	}
	return nil
}
