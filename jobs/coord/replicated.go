package coord

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/tasks"
)

// ReplicatedQueue enqueues through Queue and then waits until Replicas
// replicas of the Redis master have the task, so that a task the API
// accepted survives the loss of the master (Redis replicates
// asynchronously; without this a failover can drop what was just queued).
//
// WAIT counts replicas that acknowledged the writes of the connection it
// runs on, and asynq wrote the task on a connection of its own. So a write
// of ours goes first on the WAIT's connection: Redis replicates in the
// order it executes, and asynq's write returned before ours was sent, so
// acknowledging ours acknowledges the task too.
type ReplicatedQueue struct {
	Queue    tasks.Enqueuer
	Redis    redis.UniversalClient
	Replicas int
	Timeout  time.Duration
	Log      *logrus.Entry
}

// EnqueueContext enqueues the task and waits for the replicas. When they
// do not confirm within Timeout the task is still queued on the master,
// so it is not an error: the task is reported and a warning logged.
func (q ReplicatedQueue) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := q.Queue.EnqueueContext(ctx, task, opts...)
	if err != nil || q.Replicas <= 0 {
		return info, err
	}
	got, err := q.wait(ctx)
	if err != nil || got < q.Replicas {
		l := q.Log.WithFields(logrus.Fields{"task_id": info.ID, "replicas": got, "want": q.Replicas})
		if err != nil {
			l = l.WithError(err)
		}
		l.Warn("task queued on the Redis master but not confirmed by enough replicas; a failover now could lose it")
	}
	return info, nil
}

func (q ReplicatedQueue) wait(ctx context.Context) (int, error) {
	pipe := q.Redis.Pipeline()
	pipe.Incr(ctx, keyReplicationFence)
	n := pipe.Do(ctx, "WAIT", q.Replicas, q.Timeout.Milliseconds())
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("wait for replicas: %w", err)
	}
	got, err := n.Int()
	if err != nil {
		return 0, fmt.Errorf("wait for replicas: %w", err)
	}
	return got, nil
}
