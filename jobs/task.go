package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
)

// Payload is a task's arguments: a plain struct with snake_case JSON tags.
// Kind is its task type, which is never renamed once deployed.
type Payload interface {
	Kind() string
}

// Optional payload behaviour, found by the adapter with a type assertion.
type (
	// resolver fills in defaults that depend on the worker or the task,
	// before anything else looks at the payload.
	resolver[P any] interface {
		resolve(ctx context.Context, w *Worker, taskID string) (P, error)
	}
	// reserver names the reservations the task holds while it runs.
	reserver interface {
		reservations() []reservation
	}
	// logFielder names the payload's fields worth logging.
	logFielder interface {
		logFields() logrus.Fields
	}
	// failureAlerter names the event sent when the task fails for good.
	failureAlerter interface {
		failureEvent() Event
	}
)

// Def is one task type: its payload P, its result R, the queue it goes to,
// its timeout, and the function a worker runs for it.
type Def[P Payload, R any] struct {
	kind    string
	queue   string
	timeout func(Options) time.Duration
	run     func(*Worker, context.Context, P) (R, error)
}

// definition is what the registry keeps of a Def, whatever its types.
type definition interface {
	taskKind() string
	options(o Options) []asynq.Option
	handler(w *Worker) asynq.Handler
}

// registry holds every task type by kind. It is written only while the
// package initialises (by define, from the task table in tasks.go) and
// read-only afterwards.
var registry = map[string]definition{}

// define registers a task type; the kind comes from the payload type.
func define[P Payload, R any](queue string, timeout func(Options) time.Duration, run func(*Worker, context.Context, P) (R, error)) Def[P, R] {
	var zero P
	d := Def[P, R]{kind: zero.Kind(), queue: queue, timeout: timeout, run: run}
	if _, dup := registry[d.kind]; dup {
		panic("jobs: task type " + d.kind + " defined twice")
	}
	registry[d.kind] = d
	return d
}

func (d Def[P, R]) taskKind() string { return d.kind }

// Queue is the queue tasks of this type go to.
func (d Def[P, R]) Queue() string { return d.queue }

func (d Def[P, R]) options(o Options) []asynq.Option {
	return []asynq.Option{asynq.Queue(d.queue), asynq.MaxRetry(o.MaxRetry),
		asynq.Timeout(d.timeout(o)), asynq.Retention(o.Retention)}
}

// NewTask encodes p as a task of its kind with that kind's queue, timeout,
// retries and retention; extra options are applied after them.
func NewTask(p Payload, o Options, extra ...asynq.Option) (*asynq.Task, error) {
	return NewTaskWithRequestID(p, o, "", extra...)
}

// HeaderRequestID is the task header carrying the X-Request-ID of the API
// request that made the task; workers log it with every line about it.
const HeaderRequestID = "request_id"

// NewTaskWithRequestID is NewTask for the API request requestID (none
// when empty).
func NewTaskWithRequestID(p Payload, o Options, requestID string, extra ...asynq.Option) (*asynq.Task, error) {
	d, ok := registry[p.Kind()]
	if !ok {
		return nil, fmt.Errorf("new task: unknown task type %q", p.Kind())
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%s: encode payload: %w", p.Kind(), err)
	}
	var headers map[string]string
	if requestID != "" {
		headers = map[string]string{HeaderRequestID: requestID}
	}
	return asynq.NewTaskWithHeaders(p.Kind(), b, headers, append(d.options(o), extra...)...), nil
}

// Kinds lists every registered task type, sorted.
func Kinds() []string {
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Register mounts every task type on mux, run by w.
func Register(mux *asynq.ServeMux, w *Worker) {
	mux.Use(w.track)
	for _, kind := range Kinds() {
		mux.Handle(kind, registry[kind].handler(w))
	}
}

// handler is the one adapter between asynq and a task function: it
// decodes the payload (a bad one is never retried), resolves defaults,
// logs start and end, publishes progress and the outcome through the
// task's result, and runs the function inside the guard (cancellation,
// reservations, retry classification).
func (d Def[P, R]) handler(w *Worker) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p P
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("%s: %w: %w: %w", t.Type(), errBadPayload, err, asynq.SkipRetry)
		}
		taskID, _ := asynq.GetTaskID(ctx)
		log := w.taskLog(ctx, t)
		if r, ok := any(p).(resolver[P]); ok {
			var err error
			if p, err = r.resolve(ctx, w, taskID); err != nil {
				return w.fail(log, err)
			}
		}
		if f, ok := any(p).(logFielder); ok {
			log = log.WithFields(f.logFields())
		}
		var res []reservation
		if r, ok := any(p).(reserver); ok {
			res = r.reservations()
		}
		log.Info("task started")
		start := time.Now()
		pw := newProgressWriter(t, w.ID)
		ctx = context.WithValue(ctx, progressKey{}, engine.ProgressFunc(pw.report))
		var out R
		err := w.guard(ctx, log, res, func() (err error) {
			out, err = d.run(w, ctx, p)
			return err
		})
		if err != nil {
			if f, ok := any(p).(failureAlerter); ok && finalAttempt(ctx, err) && !errors.Is(err, errCancelled) {
				e := f.failureEvent()
				e.TaskID, e.Error = taskID, Classify(err)
				w.Alerts.Emit(ctx, e)
			}
			return err
		}
		pw.finish(out)
		log.WithField("duration_ms", time.Since(start).Milliseconds()).Info("task done")
		return nil
	})
}

type progressKey struct{}

// progressOf returns the progress reporter the adapter put in ctx (nil
// outside a task, which the engine accepts).
func progressOf(ctx context.Context) engine.ProgressFunc {
	f, _ := ctx.Value(progressKey{}).(engine.ProgressFunc)
	return f
}

// taskIDOf returns the running task's ID.
func taskIDOf(ctx context.Context) (string, bool) { return asynq.GetTaskID(ctx) }

// decodeJSON decodes a payload outside the adapter (queue inspection).
func decodeJSON(b []byte, v any) error { return json.Unmarshal(b, v) }
