package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
)

// Engine is what the task functions need from the backup engine.
type Engine interface {
	Backup(ctx context.Context, req engine.BackupRequest) (*engine.Manifest, error)
	Restore(ctx context.Context, req engine.RestoreRequest) (*engine.RestoreResult, error)
	Delete(ctx context.Context, name engine.Name, from []string) ([]string, error)
	Verify(ctx context.Context, name engine.Name, from string, allowUnsigned bool) (*engine.Manifest, error)
	Find(ctx context.Context, name engine.Name, from []string) (*engine.Manifest, []string, error)
	List(ctx context.Context, from []string) ([]engine.Entry, error)
	Drill(ctx context.Context, name engine.Name, scratch string, server *pgtool.Conn, progress engine.ProgressFunc) (*engine.DrillReport, error)
}

var _ Engine = (*engine.Engine)(nil)

// Worker runs tasks against an Engine: it holds what the task functions
// need, and Register mounts them on an asynq mux.
type Worker struct {
	Engine Engine
	Log    *logrus.Entry
	// ID names this process in task results ("host:pid", see WorkerID).
	ID string
	// Locks, when set, enforces name and restore-target reservations and
	// honours cancellations.
	Locks *Locks
	// ReserveTTL bounds how long a reservation outlives a vanished task.
	ReserveTTL time.Duration
	// Targets are the configured targets (prune and drill look them up).
	Targets *TargetSet
	// State records backups and drills for metrics and RPO; optional.
	State *State
	// Queue enqueues follow-up tasks (a prune after a scheduled backup);
	// Inspector reads the queue (which backups are in use); TaskOptions
	// are the options those tasks get.
	Queue       Enqueuer
	Inspector   TaskLister
	TaskOptions Options
	// Alerts sends events to webhooks; nil sends none.
	Alerts *Alerter
	// Buckets opens the buckets bucket backups read and restore; nil
	// refuses bucket tasks.
	Buckets Buckets

	inflight sync.WaitGroup
}

// ReservationTTL is long enough to cover every attempt of the longest task.
func ReservationTTL(o Options) time.Duration {
	return max(o.BackupTimeout, o.RestoreTimeout)*time.Duration(o.MaxRetry+1) + time.Hour
}

type reservation struct{ kind, key string }

// WorkerID returns "hostname:pid", which tells apart processes on one host.
func WorkerID() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
}

// track counts running handlers so that Drain can wait for them.
func (w *Worker) track(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		w.inflight.Add(1)
		defer w.inflight.Done()
		return next.ProcessTask(ctx, t)
	})
}

// Drain waits up to timeout for running handlers to return. asynq's
// Shutdown cancels their contexts when the grace period ends but does not
// wait for them (asynq #878); exiting at once would skip their cleanup:
// aborting the multipart upload, removing temporary files.
func (w *Worker) Drain(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
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
func (w *Worker) guard(ctx context.Context, log *logrus.Entry, res []reservation, body func() error) error {
	taskID, _ := asynq.GetTaskID(ctx)
	if w.Locks == nil {
		if err := body(); err != nil {
			return w.fail(log, err)
		}
		return nil
	}
	bg := context.WithoutCancel(ctx)
	release := func() {
		for _, r := range res {
			if err := w.Locks.Release(bg, r.kind, r.key, taskID); err != nil {
				log.WithError(err).Warn("could not release reservation")
			}
		}
	}
	if cancelled, err := w.Locks.Cancelled(ctx, taskID); err != nil {
		return w.fail(log, err)
	} else if cancelled {
		release()
		return w.fail(log, errCancelled)
	}
	for _, r := range res {
		if err := w.Locks.Acquire(ctx, r.kind, r.key, taskID, w.ReserveTTL); err != nil {
			// Give back those taken so far: two tasks each holding part of
			// the other's set (whole-server restores) would wait forever.
			release()
			return w.fail(log, err)
		}
	}
	err := body()
	if err != nil && ctx.Err() != nil {
		if cancelled, cerr := w.Locks.Cancelled(bg, taskID); cerr == nil && cancelled {
			err = fmt.Errorf("%w: %w", errCancelled, err)
		}
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if err == nil || Permanent(err) || retried >= maxRetry {
		release()
	}
	if err != nil {
		return w.fail(log, err)
	}
	return nil
}

func (w *Worker) taskLog(ctx context.Context, t *asynq.Task) *logrus.Entry {
	id, _ := asynq.GetTaskID(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	f := logrus.Fields{"task_id": id, "task_type": t.Type(), "retry": retry}
	if rid := t.Headers()[HeaderRequestID]; rid != "" {
		f["request_id"] = rid
	}
	return w.Log.WithFields(f)
}

// fail logs err and decides whether asynq may retry it. Requests that can
// never succeed (bad input, missing or existing backup, corrupt archive, no
// suitable pg_dump) are not retried; everything else, such as an
// unreachable store or database, is retried with backoff.
//
// The returned error starts with its class (see Classify), which is what
// the API shows to viewers; the full text stays in this log.
func (w *Worker) fail(log *logrus.Entry, err error) error {
	class := Classify(err)
	log = log.WithField("error_class", class)
	if Permanent(err) {
		log.WithError(err).Error("task failed permanently")
		return fmt.Errorf("%s: %w: %w", class, err, asynq.SkipRetry)
	}
	log.WithError(err).Warn("task failed; will retry")
	return fmt.Errorf("%s: %w", class, err)
}

// Permanent reports whether retrying err cannot help.
func Permanent(err error) bool {
	for _, target := range []error{engine.ErrInvalid, engine.ErrExists, engine.ErrNotFound,
		engine.ErrChecksumMismatch, engine.ErrUnreadable, engine.ErrInvalidArchive, engine.ErrSignature,
		engine.ErrRowCountMismatch, engine.ErrNoIdentity, pgtool.ErrNoMatchingClient, errBadPayload, errCancelled} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

var (
	errBadPayload = errors.New("bad task payload")
	errCancelled  = errors.New("task cancelled")
)

// NewAlertServer returns the asynq server a scheduler runs beside its
// scheduler: it serves only the alerts queue (see QueueAlerts).
func NewAlertServer(redis asynq.RedisConnOpt, retryDelay time.Duration, log *logrus.Entry) *asynq.Server {
	return asynq.NewServer(redis, asynq.Config{
		Concurrency:    2,
		Queues:         map[string]int{QueueAlerts: 1},
		RetryDelayFunc: RetryDelay(retryDelay),
		Logger:         log,
	})
}

// RegisterKinds mounts only the named task types on mux.
func RegisterKinds(mux *asynq.ServeMux, w *Worker, kinds ...string) {
	mux.Use(w.track)
	for _, k := range kinds {
		if d, ok := registry[k]; ok {
			mux.Handle(k, d.handler(w))
		}
	}
}

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

// progressWriter publishes progress through the task's ResultWriter, which
// keeps only the latest value, so the API always reads the current state.
type progressWriter struct {
	t       *asynq.Task
	worker  string
	started time.Time
	mu      sync.Mutex
	last    ProgressInfo
}

func newProgressWriter(t *asynq.Task, worker string) *progressWriter {
	pw := &progressWriter{t: t, worker: worker, started: time.Now().UTC()}
	pw.report(engine.Progress{Phase: "started"})
	return pw
}

func (pw *progressWriter) report(p engine.Progress) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.last = ProgressInfo{Phase: p.Phase, Bytes: p.Bytes, UpdatedAt: time.Now().UTC()}
	pw.write(Result{Progress: &pw.last, Worker: pw.worker, StartedAt: pw.started})
}

func (pw *progressWriter) finish(outcome any) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.last.Phase, pw.last.UpdatedAt = "done", time.Now().UTC()
	pw.write(Result{Progress: &pw.last, Outcome: outcome, Worker: pw.worker, StartedAt: pw.started})
}

func (pw *progressWriter) write(r Result) {
	if w := pw.t.ResultWriter(); w != nil {
		if b, err := json.Marshal(r); err == nil {
			// Fails only once the task's context is done; progress is
			// best effort and must never fail the task.
			_, _ = w.Write(b)
		}
	}
}

// RetryDelay is exponential from base (base, 2×base, 4×base, ...), capped at
// ten minutes, with ±20% jitter so that tasks failed by one outage do not
// all come back at the same instant. asynq's default grows as n⁴ and
// leaves a task waiting for hours after a short MinIO restart.
func RetryDelay(base time.Duration) asynq.RetryDelayFunc {
	return func(n int, _ error, _ *asynq.Task) time.Duration {
		d := base
		for i := 0; i < n && d < 10*time.Minute; i++ {
			d *= 2
		}
		d = min(d, 10*time.Minute)
		return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	}
}

// ServerOptions configures a worker process's asynq server.
type ServerOptions struct {
	Concurrency int
	// QueueWeights gives every queue in AllQueues its priority weight.
	QueueWeights map[string]int
	// ShutdownTimeout is how long running tasks may finish on SIGTERM
	// before they are handed back to the queue.
	ShutdownTimeout time.Duration
	// RetryDelay is the first retry's delay (see RetryDelay).
	RetryDelay time.Duration
	// PollInterval is how often an idle worker looks for new tasks
	// (asynq's default, 1 s, adds up to a second to every task's start).
	PollInterval time.Duration
}

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

// NewServer returns the worker's asynq server.
func NewServer(redis asynq.RedisConnOpt, o ServerOptions, log *logrus.Entry) (*asynq.Server, error) {
	if err := CheckQueueWeights(o.QueueWeights); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	queues := maps.Clone(o.QueueWeights)
	if _, ok := queues[QueueAlerts]; !ok {
		// Alerts are small and urgent: as heavy as the heaviest queue.
		queues[QueueAlerts] = slices.Max(slices.Collect(maps.Values(o.QueueWeights)))
	}
	return asynq.NewServer(redis, asynq.Config{
		Concurrency:       o.Concurrency,
		TaskCheckInterval: o.PollInterval,
		Queues:            queues,
		ShutdownTimeout:   o.ShutdownTimeout,
		RetryDelayFunc:    RetryDelay(o.RetryDelay),
		Logger:            log,
		// A permanent failure is still a failure for the queue's metrics;
		// only tasks asked to stop are not.
		IsFailure: func(err error) bool { return !errors.Is(err, context.Canceled) },
		HealthCheckFunc: func(err error) {
			if err != nil {
				log.WithError(err).Warn("redis health check failed")
			}
		},
	}), nil
}
