// Command scheduler enqueues each target's scheduled backups and restore
// drills, and watches each target's recovery point objective. Two or more
// may run for availability: each slot still produces exactly one backup,
// and each RPO change exactly one alert.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/internal/loop"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/scheduling"
	"github.com/autograph/pgbackup/jobs/worker"
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
	setup, err := wire.Load(wire.Scheduler)
	if err != nil {
		return err
	}
	cfg := setup.Config
	log := configs.NewLogger(cfg, "scheduler", os.Stderr)
	targets := setup.Targets
	eng, err := wire.Engine(ctx, setup, log)
	if err != nil {
		return err
	}
	redisOpt := wire.RedisOpt(setup)
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	rdb, err := wire.Redis(setup)
	if err != nil {
		return err
	}
	defer rdb.Close()

	s, err := scheduling.NewScheduler(redisOpt, targets, wire.TaskOptions(cfg), log)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("start scheduler: %w", err)
	}
	watched := 0
	for _, t := range targets.All() {
		fields := map[string]any{"target": t.Name, "database": t.Database, "rpo": t.RPO.String()}
		if t.Schedule != nil {
			fields["schedule"], fields["slot"] = t.Schedule.Spec, t.Schedule.Slot.String()
		}
		if t.DrillSchedule != nil {
			fields["drill_schedule"] = t.DrillSchedule.Spec
		}
		log.WithFields(fields).Info("target")
		if t.Schedule != nil && !t.Retention.Enabled() {
			log.WithField("target", t.Name).Warn("no retention configured: this target's scheduled backups accumulate")
		}
		if t.RPO > 0 {
			watched++
		}
	}
	if !cfg.BackupEnabled {
		log.Info("BACKUP_ENABLED is false: no scheduled backups")
	}
	alerter := wire.Alerter(cfg, client, log)
	// Alerts are delivered from here too, so they still go out when no
	// worker runs.
	alertSrv := worker.NewAlertServer(redisOpt, cfg.TaskRetryDelay, log)
	mux := asynq.NewServeMux()
	rt := &worker.Runtime{Log: log, ID: worker.ProcessID(), Alerts: alerter}
	rt.Register(mux, &worker.AlertWorker{Webhooks: alerter.Webhooks(), Secret: alerter.Secret, Client: alerter.Client})
	if err := alertSrv.Start(mux); err != nil {
		return fmt.Errorf("start alert delivery: %w", err)
	}
	defer alertSrv.Shutdown()
	watcher := &scheduling.RPOWatcher{Targets: targets, State: coord.NewState(rdb), Backups: eng,
		Alerts: alerter, Interval: cfg.RPOCheckInterval, Log: log}
	var watching *loop.Service
	if watched > 0 {
		watching = watcher.Start(ctx)
	}
	var checking *loop.Service
	if setup.Signer.Enabled() {
		checking = (&scheduling.ManifestWatcher{Backups: eng, Alerts: alerter, Interval: cfg.RPOCheckInterval, Log: log}).Start(ctx)
	}
	log.WithField("rpo_watched_targets", watched).Info("scheduler started")
	<-ctx.Done()
	s.Shutdown()
	watching.Stop()
	checking.Stop()
	log.Info("scheduler stopped")
	return nil
}
