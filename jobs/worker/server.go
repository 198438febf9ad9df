package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/tasks"
)

// ProcessID returns "hostname:pid", which tells apart processes on one host.
func ProcessID() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
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
	// QueueWeights gives every queue in tasks.AllQueues its priority weight.
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

// NewServer returns the worker's asynq server.
func NewServer(redis asynq.RedisConnOpt, o ServerOptions, log *logrus.Entry) (*asynq.Server, error) {
	if err := tasks.CheckQueueWeights(o.QueueWeights); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	queues := maps.Clone(o.QueueWeights)
	if _, ok := queues[tasks.QueueAlerts]; !ok {
		// Alerts are small and urgent: as heavy as the heaviest queue.
		queues[tasks.QueueAlerts] = slices.Max(slices.Collect(maps.Values(o.QueueWeights)))
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

// NewAlertServer returns the asynq server a scheduler runs beside its
// scheduler: it serves only the alerts queue (see tasks.QueueAlerts), with
// an AlertWorker.
func NewAlertServer(redis asynq.RedisConnOpt, retryDelay time.Duration, log *logrus.Entry) *asynq.Server {
	return asynq.NewServer(redis, asynq.Config{
		Concurrency:    2,
		Queues:         map[string]int{tasks.QueueAlerts: 1},
		RetryDelayFunc: RetryDelay(retryDelay),
		Logger:         log,
	})
}
