package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/tasks"
)

// track counts running handlers so that Drain can wait for them.
func (rt *Runtime) track(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		rt.inflight.Add(1)
		defer rt.inflight.Done()
		return next.ProcessTask(ctx, t)
	})
}

// Drain waits up to timeout for running handlers to return. asynq's
// Shutdown cancels their contexts when the grace period ends but does not
// wait for them (asynq #878); exiting at once would skip their cleanup:
// aborting the multipart upload, removing temporary files.
func (rt *Runtime) Drain(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { rt.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// guard runs a task body with the cross-process rules around it: a
// cancelled task does nothing; reservations are taken before the body runs
// (a reservation held by another task fails the attempt, to be retried
// later: the task waits its turn) and released once the task will not run
// again, whether it succeeded, failed for good, or used its last attempt.
func (rt *Runtime) guard(ctx context.Context, log *logrus.Entry, res []tasks.Reservation, body func() error) error {
	taskID, _ := asynq.GetTaskID(ctx)
	if rt.Locks == nil {
		if err := body(); err != nil {
			return rt.fail(log, err)
		}
		return nil
	}
	bg := context.WithoutCancel(ctx)
	release := func() {
		for _, r := range res {
			if err := rt.Locks.Release(bg, r.Scope, r.Key, taskID); err != nil {
				log.WithError(err).Warn("could not release reservation")
			}
		}
	}
	if cancelled, err := rt.Locks.Cancelled(ctx, taskID); err != nil {
		return rt.fail(log, err)
	} else if cancelled {
		release()
		return rt.fail(log, tasks.ErrCancelled)
	}
	for _, r := range res {
		if err := rt.Locks.Acquire(ctx, r.Scope, r.Key, taskID, rt.ReserveTTL); err != nil {
			// Give back those taken so far: two tasks each holding part of
			// the other's set (whole-server restores) would wait forever.
			release()
			return rt.fail(log, err)
		}
	}
	err := body()
	if err != nil && ctx.Err() != nil {
		if cancelled, cerr := rt.Locks.Cancelled(bg, taskID); cerr == nil && cancelled {
			err = fmt.Errorf("%w: %w", tasks.ErrCancelled, err)
		}
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if err == nil || tasks.Permanent(err) || retried >= maxRetry {
		release()
	}
	if err != nil {
		return rt.fail(log, err)
	}
	return nil
}

func (rt *Runtime) taskLog(ctx context.Context, t *asynq.Task) *logrus.Entry {
	id, _ := asynq.GetTaskID(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	f := logrus.Fields{"task_id": id, "task_type": t.Type(), "retry": retry}
	if rid := t.Headers()[tasks.HeaderRequestID]; rid != "" {
		f["request_id"] = rid
	}
	return rt.Log.WithFields(f)
}

// fail logs err and decides whether asynq may retry it (tasks.Permanent).
//
// The returned error starts with its class (see tasks.Classify), which is
// what the API shows to viewers; the full text stays in this log.
func (rt *Runtime) fail(log *logrus.Entry, err error) error {
	class := tasks.Classify(err)
	log = log.WithField("error_class", class)
	if tasks.Permanent(err) {
		log.WithError(err).Error("task failed permanently")
		return fmt.Errorf("%s: %w: %w", class, err, asynq.SkipRetry)
	}
	log.WithError(err).Warn("task failed; will retry")
	return fmt.Errorf("%s: %w", class, err)
}

// finalAttempt reports whether err ends the task: it is never retried, or
// this was the last attempt.
func finalAttempt(ctx context.Context, err error) bool {
	if tasks.Permanent(err) {
		return true
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	return ok && retried >= maxRetry
}
