package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// Enqueuer puts tasks in the queue (an *asynq.Client).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// TaskLister reads the queue (an *asynq.Inspector).
type TaskLister interface {
	ListPendingTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListActiveTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListScheduledTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

// BackupsInUse names the backups that queued, scheduled, retrying or
// running restores, drills and verifies read: pruning must leave them. A
// nil q (no queue to ask) has none.
func BackupsInUse(q TaskLister) (map[string]bool, error) {
	inUse := map[string]bool{}
	if q == nil {
		return inUse, nil
	}
	for _, queue := range []string{QueueRestore, QueueMaintenance} {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			q.ListPendingTasks, q.ListActiveTasks, q.ListRetryTasks, q.ListScheduledTasks,
		} {
			tasks, err := list(queue, asynq.PageSize(100000))
			if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
				return nil, fmt.Errorf("backups in use: %w", err)
			}
			for _, t := range tasks {
				switch t.Type {
				case TypeBackupRestore, TypeBackupVerify, TypeBackupDrill:
					var p struct {
						BackupName string `json:"backup_name"`
					}
					if json.Unmarshal(t.Payload, &p) == nil && p.BackupName != "" {
						inUse[p.BackupName] = true
					}
				}
			}
		}
	}
	return inUse, nil
}
