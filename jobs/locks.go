package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reservation kinds.
const (
	// KindName reserves a backup name from enqueue until the backup exists
	// or its task has failed for good, so two creates of one name cannot
	// both be accepted.
	KindName = "name"
	// KindRestore reserves a target database for one restore at a time:
	// two restores into one database must never interleave.
	KindRestore = "restore"
)

// ErrBusy means another task holds the reservation; errors.As with
// *BusyError tells which.
var ErrBusy = errors.New("reserved by another task")

// BusyError names the task holding a reservation.
type BusyError struct{ Kind, Key, Holder string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s: %s %s is held by task %s", ErrBusy, e.Kind, e.Key, e.Holder)
}

// Unwrap makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Unwrap() error { return ErrBusy }

// Locks keeps reservations and cancellation marks in Redis, beside the
// queue, so that the API and every worker see the same ones.
type Locks struct {
	rdb redis.UniversalClient
}

// NewLocks wraps a Redis client.
func NewLocks(rdb redis.UniversalClient) *Locks { return &Locks{rdb: rdb} }

func reservationKey(kind, key string) string { return "pgbackup:reserve:" + kind + ":" + key }
func cancelKey(taskID string) string         { return "pgbackup:cancel:" + taskID }

// Acquire takes the reservation for owner (a task ID), or confirms owner
// already holds it. It returns ErrBusy, wrapped with the holder, otherwise.
// The TTL frees reservations whose task vanished without releasing them.
func (l *Locks) Acquire(ctx context.Context, kind, key, owner string, ttl time.Duration) error {
	k := reservationKey(kind, key)
	ok, err := l.rdb.SetNX(ctx, k, owner, ttl).Result()
	if err != nil {
		return fmt.Errorf("reserve %s %s: %w", kind, key, err)
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
		return fmt.Errorf("reserve %s %s: %w", kind, key, err)
	}
	if holder == owner {
		return nil
	}
	return &BusyError{Kind: kind, Key: key, Holder: holder}
}

// releaseScript deletes the key only if owner still holds it, so a task
// whose reservation expired cannot free another task's.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Release gives up owner's reservation.
func (l *Locks) Release(ctx context.Context, kind, key, owner string) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{reservationKey(kind, key)}, owner).Err(); err != nil {
		return fmt.Errorf("release %s %s: %w", kind, key, err)
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

// ErrSigningKeyMismatch means this process's manifest signing key is not
// the one the other processes of the deployment use.
var ErrSigningKeyMismatch = errors.New("signing key differs from the one in use")

const signingKeyFingerprint = "pgbackup:signing-key-fingerprint"

// CheckSigningKey compares this process's signing key fingerprint (""
// without a key) with the one recorded in Redis by the processes started
// before it, and records it when none is. A key whose predecessor (one of
// old) is recorded replaces it: that is a rotation. Anything else fails,
// so that a worker with another key, or none, cannot start writing
// manifests the others refuse.
func (l *Locks) CheckSigningKey(ctx context.Context, fingerprint string, old []string) error {
	recorded, err := l.rdb.Get(ctx, signingKeyFingerprint).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("check signing key: %w", err)
	}
	switch {
	case recorded == fingerprint:
		return nil
	case recorded == "":
		// (fingerprint is not empty here.) Another process may record a
		// different key at the same moment: SetNX lets one of them win.
		ok, err := l.rdb.SetNX(ctx, signingKeyFingerprint, fingerprint, 0).Result()
		if err != nil {
			return fmt.Errorf("record signing key: %w", err)
		}
		if !ok {
			if recorded, err = l.rdb.Get(ctx, signingKeyFingerprint).Result(); err != nil {
				return fmt.Errorf("check signing key: %w", err)
			}
			if recorded != fingerprint {
				return fmt.Errorf("%w: this process has key %s, the deployment signs with key %s", ErrSigningKeyMismatch, fingerprint, recorded)
			}
		}
		return nil
	case fingerprint == "":
		return fmt.Errorf("%w: this process has none, the deployment signs with key %s", ErrSigningKeyMismatch, recorded)
	case slices.Contains(old, recorded):
		if err := l.rdb.Set(ctx, signingKeyFingerprint, fingerprint, 0).Err(); err != nil {
			return fmt.Errorf("record rotated signing key: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w: this process has key %s, the deployment signs with key %s", ErrSigningKeyMismatch, fingerprint, recorded)
}
