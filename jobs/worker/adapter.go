package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// Worker runs the tasks of one type: payload P, result R (published as the
// task's outcome).
type Worker[P tasks.Payload, R any] interface {
	Work(ctx context.Context, p P) (R, error)
}

// Optional behaviour of a worker kind, found by the adapter with a type
// assertion.
type (
	// resolver fills in defaults that depend on the worker or the task,
	// before anything else looks at the payload.
	resolver[P any] interface {
		resolve(ctx context.Context, p P, taskID string) (P, error)
	}
	// logFielder names the payload's fields worth logging.
	logFielder[P any] interface {
		logFields(p P) logrus.Fields
	}
	// failureAlerter names the event sent when the task fails for good.
	failureAlerter[P any] interface {
		failureEvent(p P) alert.Event
	}
)

// Kind is a worker kind that Register can mount: one of this package's
// worker structs.
type Kind interface {
	mount(rt *Runtime) (taskType string, h asynq.Handler)
}

// Locks keeps reservations and cancellation marks (a *coord.Locks).
type Locks interface {
	Acquire(ctx context.Context, scope, key, owner string, ttl time.Duration) error
	Release(ctx context.Context, scope, key, owner string) error
	Cancelled(ctx context.Context, taskID string) (bool, error)
}

// Runtime is what every worker kind shares: the process's identity and
// log, the reservations, and the alerts sent when a task fails for good.
type Runtime struct {
	Log *logrus.Entry
	// ID names this process in task results ("host:pid", see ProcessID).
	ID string
	// Locks, when set, enforces name and restore reservations and honours
	// cancellations.
	Locks Locks
	// ReserveTTL bounds how long a reservation outlives a vanished task.
	ReserveTTL time.Duration
	// Alerts sends events to webhooks; nil sends none.
	Alerts *alert.Alerter

	inflight sync.WaitGroup
}

// Register mounts the given worker kinds on mux, run by rt.
func (rt *Runtime) Register(mux *asynq.ServeMux, kinds ...Kind) {
	mux.Use(rt.track)
	for _, k := range kinds {
		mux.Handle(k.mount(rt))
	}
}

// handler is the one adapter between asynq and a worker: it decodes the
// payload (a bad one is never retried), resolves defaults, logs start and
// end, publishes progress and the outcome through the task's result, and
// runs the worker inside the guard (cancellation, reservations, retry
// classification).
func handler[P tasks.Payload, R any](rt *Runtime, w Worker[P, R]) (string, asynq.Handler) {
	var zero P
	return zero.TaskType(), asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p P
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("%s: %w: %w: %w", t.Type(), tasks.ErrBadPayload, err, asynq.SkipRetry)
		}
		taskID, _ := asynq.GetTaskID(ctx)
		log := rt.taskLog(ctx, t)
		if r, ok := w.(resolver[P]); ok {
			var err error
			if p, err = r.resolve(ctx, p, taskID); err != nil {
				return rt.fail(log, err)
			}
		}
		if f, ok := w.(logFielder[P]); ok {
			log = log.WithFields(f.logFields(p))
		}
		var res []tasks.Reservation
		if r, ok := any(p).(tasks.Reserver); ok {
			res = r.Reservations()
		}
		log.Info("task started")
		start := time.Now()
		pw := newProgressWriter(t, rt.ID)
		ctx = context.WithValue(ctx, progressKey{}, engine.ProgressFunc(pw.report))
		var out R
		err := rt.guard(ctx, log, res, func() (err error) {
			out, err = w.Work(ctx, p)
			return err
		})
		if err != nil {
			if f, ok := w.(failureAlerter[P]); ok && finalAttempt(ctx, err) && !errors.Is(err, tasks.ErrCancelled) {
				e := f.failureEvent(p)
				e.TaskID, e.Error = taskID, tasks.Classify(err)
				rt.Alerts.Emit(ctx, e)
			}
			return err
		}
		pw.finish(out)
		log.WithField("duration_ms", time.Since(start).Milliseconds()).Info("task done")
		return nil
	})
}
