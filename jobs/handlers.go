package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
)

// Engine is what the handlers need from the backup engine.
type Engine interface {
	Backup(ctx context.Context, req engine.BackupRequest) (*engine.Manifest, error)
	Restore(ctx context.Context, req engine.RestoreRequest) (*engine.Manifest, error)
	Delete(ctx context.Context, name string, from []string) ([]string, error)
	Verify(ctx context.Context, name, from string) (*engine.Manifest, error)
	DefaultDatabase() string
}

var _ Engine = (*engine.Engine)(nil)

// Handlers runs tasks against an Engine.
type Handlers struct {
	Engine Engine
	Log    *logrus.Entry
	// Worker names this process in task results ("host:pid").
	Worker string
	// Locks, when set, enforces name and restore-target reservations and
	// honours cancellations.
	Locks *Locks
	// ReserveTTL bounds how long a reservation outlives a vanished task.
	ReserveTTL time.Duration

	inflight sync.WaitGroup
}

// ReservationTTL is long enough to cover every attempt of the longest task.
func ReservationTTL(cfg configs.Config) time.Duration {
	return max(cfg.BackupTimeout, cfg.RestoreTimeout)*time.Duration(cfg.TaskMaxRetry+1) + time.Hour
}

type reservation struct{ kind, key string }

// WorkerID returns "hostname:pid", which tells apart processes on one host.
func WorkerID() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
}

// Register mounts every task type on mux.
func (h *Handlers) Register(mux *asynq.ServeMux) {
	mux.Use(h.track)
	mux.HandleFunc(TypeBackupCreate, h.ProcessBackup)
	mux.HandleFunc(TypeBackupRestore, h.ProcessRestore)
	mux.HandleFunc(TypeBackupDelete, h.ProcessDelete)
	mux.HandleFunc(TypeBackupVerify, h.ProcessVerify)
}

// track counts running handlers so that Drain can wait for them.
func (h *Handlers) track(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		h.inflight.Add(1)
		defer h.inflight.Done()
		return next.ProcessTask(ctx, t)
	})
}

// Drain waits up to timeout for running handlers to return. asynq's
// Shutdown cancels their contexts when the grace period ends but does not
// wait for them (asynq #878); exiting at once would skip their cleanup:
// aborting the multipart upload, removing temporary files.
func (h *Handlers) Drain(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { h.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// ProcessBackup handles TypeBackupCreate.
func (h *Handlers) ProcessBackup(ctx context.Context, t *asynq.Task) error {
	var p BackupPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	taskID, _ := asynq.GetTaskID(ctx)
	name := p.BackupName
	if name == "" && p.Scheduled {
		// The scheduler made the task ID the slot's backup name.
		name = taskID
	}
	log := h.taskLog(ctx, t).WithFields(logrus.Fields{"backup_name": name, "database": p.Database, "format": p.Format})
	log.Info("backup started")
	start := time.Now()
	pw := newProgressWriter(t, h.Worker)
	var m *engine.Manifest
	err := h.guard(ctx, log, []reservation{{KindName, name}}, func() (err error) {
		m, err = h.Engine.Backup(ctx, engine.BackupRequest{
			Name: name, Database: p.Database, Format: engine.Format(p.Format), Stores: p.Stores,
			TaskID: taskID, Progress: pw.report,
		})
		return err
	})
	if err != nil {
		return err
	}
	pw.finish(m)
	log.WithFields(logrus.Fields{"size_bytes": m.SizeBytes, "duration_ms": time.Since(start).Milliseconds()}).Info("backup task done")
	return nil
}

// RestoreOutcome is the result of a restore task.
type RestoreOutcome struct {
	Manifest       *engine.Manifest `json:"manifest"`
	TargetDatabase string           `json:"target_database"`
	Clean          bool             `json:"clean"`
}

// ProcessRestore handles TypeBackupRestore.
func (h *Handlers) ProcessRestore(ctx context.Context, t *asynq.Task) error {
	var p RestorePayload
	if err := decode(t, &p); err != nil {
		return err
	}
	log := h.taskLog(ctx, t).WithFields(logrus.Fields{"backup_name": p.BackupName, "database": p.TargetDatabase, "clean": p.Clean})
	log.Info("restore started")
	start := time.Now()
	target := p.TargetDatabase
	if target == "" {
		target = h.Engine.DefaultDatabase()
	}
	pw := newProgressWriter(t, h.Worker)
	var m *engine.Manifest
	err := h.guard(ctx, log, []reservation{{KindRestore, target}}, func() (err error) {
		m, err = h.Engine.Restore(ctx, engine.RestoreRequest{
			Name: p.BackupName, From: p.From, TargetDatabase: target, Clean: p.Clean, Progress: pw.report,
		})
		return err
	})
	if err != nil {
		return err
	}
	pw.finish(RestoreOutcome{Manifest: m, TargetDatabase: target, Clean: p.Clean})
	log.WithField("duration_ms", time.Since(start).Milliseconds()).Info("restore task done")
	return nil
}

// DeleteOutcome is the result of a delete task.
type DeleteOutcome struct {
	BackupName  string   `json:"backup_name"`
	DeletedFrom []string `json:"deleted_from"`
}

// ProcessDelete handles TypeBackupDelete.
func (h *Handlers) ProcessDelete(ctx context.Context, t *asynq.Task) error {
	var p DeletePayload
	if err := decode(t, &p); err != nil {
		return err
	}
	log := h.taskLog(ctx, t).WithField("backup_name", p.BackupName)
	pw := newProgressWriter(t, h.Worker)
	var deleted []string
	err := h.guard(ctx, log, nil, func() (err error) {
		deleted, err = h.Engine.Delete(ctx, p.BackupName, p.Stores)
		return err
	})
	if err != nil {
		return err
	}
	pw.finish(DeleteOutcome{BackupName: p.BackupName, DeletedFrom: deleted})
	log.WithField("stores", deleted).Info("delete task done")
	return nil
}

// VerifyOutcome is the result of a verify task.
type VerifyOutcome struct {
	BackupName string `json:"backup_name"`
	Verified   bool   `json:"verified"`
	SHA256     string `json:"sha256"`
	SizeBytes  int64  `json:"size_bytes"`
}

// ProcessVerify handles TypeBackupVerify.
func (h *Handlers) ProcessVerify(ctx context.Context, t *asynq.Task) error {
	var p VerifyPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	log := h.taskLog(ctx, t).WithField("backup_name", p.BackupName)
	pw := newProgressWriter(t, h.Worker)
	var m *engine.Manifest
	err := h.guard(ctx, log, nil, func() (err error) {
		m, err = h.Engine.Verify(ctx, p.BackupName, p.From)
		return err
	})
	if err != nil {
		return err
	}
	pw.finish(VerifyOutcome{BackupName: p.BackupName, Verified: true, SHA256: m.SHA256, SizeBytes: m.SizeBytes})
	log.Info("verify task done: archive intact")
	return nil
}

// guard runs a task body with the cross-process rules around it: a
// cancelled task does nothing; reservations are taken before the body runs
// (a reservation held by another task fails the attempt, to be retried
// later: the task waits its turn) and released once the task will not run
// again, whether it succeeded, failed for good, or used its last attempt.
func (h *Handlers) guard(ctx context.Context, log *logrus.Entry, res []reservation, body func() error) error {
	taskID, _ := asynq.GetTaskID(ctx)
	if h.Locks == nil {
		if err := body(); err != nil {
			return h.fail(log, err)
		}
		return nil
	}
	bg := context.WithoutCancel(ctx)
	release := func() {
		for _, r := range res {
			if err := h.Locks.Release(bg, r.kind, r.key, taskID); err != nil {
				log.WithError(err).Warn("could not release reservation")
			}
		}
	}
	if cancelled, err := h.Locks.Cancelled(ctx, taskID); err != nil {
		return h.fail(log, err)
	} else if cancelled {
		release()
		return h.fail(log, errCancelled)
	}
	for _, r := range res {
		if err := h.Locks.Acquire(ctx, r.kind, r.key, taskID, h.ReserveTTL); err != nil {
			return h.fail(log, err)
		}
	}
	err := body()
	if err != nil && ctx.Err() != nil {
		if cancelled, cerr := h.Locks.Cancelled(bg, taskID); cerr == nil && cancelled {
			err = fmt.Errorf("%w: %w", errCancelled, err)
		}
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if err == nil || Permanent(err) || retried >= maxRetry {
		release()
	}
	if err != nil {
		return h.fail(log, err)
	}
	return nil
}

func (h *Handlers) taskLog(ctx context.Context, t *asynq.Task) *logrus.Entry {
	id, _ := asynq.GetTaskID(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	return h.Log.WithFields(logrus.Fields{"task_id": id, "task_type": t.Type(), "retry": retry})
}

// fail logs err and decides whether asynq may retry it. Requests that can
// never succeed (bad input, missing or existing backup, corrupt archive, no
// suitable pg_dump) are not retried; everything else, such as an
// unreachable store or database, is retried with backoff.
func (h *Handlers) fail(log *logrus.Entry, err error) error {
	if Permanent(err) {
		log.WithError(err).Error("task failed permanently")
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	log.WithError(err).Warn("task failed; will retry")
	return err
}

// Permanent reports whether retrying err cannot help.
func Permanent(err error) bool {
	for _, target := range []error{engine.ErrInvalid, engine.ErrExists, engine.ErrNotFound,
		engine.ErrChecksumMismatch, engine.ErrUnreadable, pgtool.ErrNoMatchingClient, errBadPayload, errCancelled} {
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

func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("%s: %w: %w: %w", t.Type(), errBadPayload, err, asynq.SkipRetry)
	}
	return nil
}

// progressWriter publishes progress through the task's ResultWriter, which
// keeps only the latest value, so the API always reads the current state.
type progressWriter struct {
	t      *asynq.Task
	worker string
	mu     sync.Mutex
	last   ProgressInfo
}

func newProgressWriter(t *asynq.Task, worker string) *progressWriter {
	pw := &progressWriter{t: t, worker: worker}
	pw.report(engine.Progress{Phase: "started"})
	return pw
}

func (pw *progressWriter) report(p engine.Progress) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.last = ProgressInfo{Phase: p.Phase, Bytes: p.Bytes, UpdatedAt: time.Now().UTC()}
	pw.write(Result{Progress: &pw.last, Worker: pw.worker})
}

func (pw *progressWriter) finish(outcome any) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.last.Phase, pw.last.UpdatedAt = "done", time.Now().UTC()
	pw.write(Result{Progress: &pw.last, Outcome: outcome, Worker: pw.worker})
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

// RedisOpt is the Redis connection every program uses.
func RedisOpt(cfg configs.Config) asynq.RedisClientOpt {
	return asynq.RedisClientOpt{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB}
}

// NewServer returns the worker's asynq server: queue weights, concurrency
// and grace period from the configuration.
func NewServer(cfg configs.Config, log *logrus.Entry) (*asynq.Server, error) {
	queues, err := cfg.Queues()
	if err != nil {
		return nil, err
	}
	return asynq.NewServer(RedisOpt(cfg), asynq.Config{
		Concurrency:     cfg.WorkerConcurrency,
		Queues:          queues,
		ShutdownTimeout: cfg.WorkerShutdownTimeout,
		RetryDelayFunc:  RetryDelay(cfg.TaskRetryDelay),
		Logger:          log,
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
