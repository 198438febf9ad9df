// Command scheduler enqueues a scheduled backup once per slot while
// BACKUP_ENABLED is true. Two or more may run for availability: each slot
// still produces exactly one backup.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := configs.Load()
	if err != nil {
		return err
	}
	log := configs.NewLogger(cfg, "scheduler", os.Stderr)
	if !cfg.BackupEnabled {
		log.Info("BACKUP_ENABLED is false: nothing to schedule; waiting for a signal")
		<-ctx.Done()
		return nil
	}
	sched, err := wire.Schedule(cfg)
	if err != nil {
		return err
	}
	stores := wire.StoreNames(cfg)
	s, err := jobs.NewScheduler(wire.RedisOpt(cfg), sched, stores, wire.TaskOptions(cfg), log)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("start scheduler: %w", err)
	}
	log.WithFields(map[string]any{"spec": sched.Spec, "slot": sched.Slot.String(), "stores": stores}).Info("scheduler started")
	<-ctx.Done()
	s.Shutdown()
	log.Info("scheduler stopped")
	return nil
}
