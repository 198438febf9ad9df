// Command worker runs backup, restore and delete tasks from the queue. Run
// as many as you like, on as many machines as you like, against one Redis.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs"
	"github.com/autograph/pgbackup/jobs/engine"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := configs.Load()
	if err != nil {
		return err
	}
	log := configs.NewLogger(cfg, "worker", os.Stderr).WithField("worker", jobs.WorkerID())
	eng, err := engine.FromConfig(ctx, cfg, log)
	if err != nil {
		return err
	}
	srv, err := jobs.NewServer(cfg, log)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB})
	defer rdb.Close()
	mux := asynq.NewServeMux()
	handlers := &jobs.Handlers{Engine: eng, Log: log, Worker: jobs.WorkerID(),
		Locks: jobs.NewLocks(rdb), ReserveTTL: jobs.ReservationTTL(cfg)}
	handlers.Register(mux)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	log.WithField("config", cfg.String()).Info("worker started")
	<-ctx.Done()
	log.WithField("grace", cfg.WorkerShutdownTimeout.String()).Info("stopping: no new tasks; running ones get the grace period")
	srv.Shutdown()
	if !handlers.Drain(30 * time.Second) {
		log.Warn("handlers still running 30s after shutdown; exiting anyway")
	}
	log.Info("worker stopped")
	return nil
}
