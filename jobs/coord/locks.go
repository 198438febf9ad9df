package coord

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/jobs/tasks"
)

// Locks keeps reservations and cancellation marks in Redis, beside the
// queue, so that the API and every worker see the same ones.
type Locks struct {
	rdb redis.UniversalClient
}

// NewLocks wraps a Redis client.
func NewLocks(rdb redis.UniversalClient) *Locks { return &Locks{rdb: rdb} }

// Acquire takes the reservation of scope (tasks.ScopeName,
// tasks.ScopeRestore) on key for owner (a task ID), or confirms owner
// already holds it. It returns a *tasks.BusyError naming the holder
// otherwise.
// The TTL frees reservations whose task vanished without releasing them.
func (l *Locks) Acquire(ctx context.Context, scope, key, owner string, ttl time.Duration) error {
	k := reservationKey(scope, key)
	ok, err := l.rdb.SetNX(ctx, k, owner, ttl).Result()
	if err != nil {
		return fmt.Errorf("reserve %s %s: %w", scope, key, err)
	}
	if ok {
		return nil
	}
	holder, err := l.rdb.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		// Released between the two calls; try once more.
		if ok, err = l.rdb.SetNX(ctx, k, owner, ttl).Result(); err == nil && ok {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("reserve %s %s: %w", scope, key, err)
	}
	if holder == owner {
		return nil
	}
	return &tasks.BusyError{Scope: scope, Key: key, Holder: holder}
}

// releaseScript deletes the key only if owner still holds it, so a task
// whose reservation expired cannot free another task's.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Release gives up owner's reservation.
func (l *Locks) Release(ctx context.Context, scope, key, owner string) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{reservationKey(scope, key)}, owner).Err(); err != nil {
		return fmt.Errorf("release %s %s: %w", scope, key, err)
	}
	return nil
}

// MarkCancelled records that a task must not run (again). asynq retries a
// task whose context was cancelled by Inspector.CancelProcessing even when
// the handler returns SkipRetry (asynq #532, #968); the mark makes that
// retry a no-op.
func (l *Locks) MarkCancelled(ctx context.Context, taskID string, ttl time.Duration) error {
	if err := l.rdb.Set(ctx, cancelKey(taskID), "1", ttl).Err(); err != nil {
		return fmt.Errorf("cancel %s: %w", taskID, err)
	}
	return nil
}

// Cancelled reports whether the task was cancelled.
func (l *Locks) Cancelled(ctx context.Context, taskID string) (bool, error) {
	n, err := l.rdb.Exists(ctx, cancelKey(taskID)).Result()
	if err != nil {
		return false, fmt.Errorf("check cancel %s: %w", taskID, err)
	}
	return n > 0, nil
}
