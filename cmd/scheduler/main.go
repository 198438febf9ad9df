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
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/internal/loop"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/policy"
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
		if t.BaseBackupSchedule != nil {
			fields["base_backup_schedule"] = t.BaseBackupSchedule.Spec
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
	state := coord.NewState(rdb)
	watcher := &scheduling.RPOWatcher{Targets: targets, State: state, Backups: eng,
		Alerts: alerter, Interval: cfg.RPOCheckInterval, Log: log}
	var watching *loop.Service
	if watched > 0 {
		watching = watcher.Start(ctx)
	}
	var checking *loop.Service
	if setup.Signer.Enabled() {
		checking = (&scheduling.ManifestWatcher{Backups: eng, Alerts: alerter, Interval: cfg.RPOCheckInterval, Log: log}).Start(ctx)
	}
	walWatching, err := startWALWatchers(ctx, setup, eng, state, alerter, log)
	if err != nil {
		s.Shutdown()
		watching.Stop()
		checking.Stop()
		return err
	}
	log.WithFields(map[string]any{"rpo_watched_targets": watched, "wal_archives_watched": len(walWatching)}).Info("scheduler started")
	<-ctx.Done()
	s.Shutdown()
	watching.Stop()
	checking.Stop()
	for _, w := range walWatching {
		w.Stop()
	}
	log.Info("scheduler stopped")
	return nil
}

// startWALWatchers starts one WAL watcher per pitr archive (one per
// server), watching the WAL from the oldest base backup (listed by
// backups) on and publishing its gap count and slot readings into state.
// The scheduler reads no target password_file, so a server whose target
// needs one can be asked how far its WAL is, and about its slot, only when
// libpq's other ways give the scheduler a password (a .pgpass file,
// PGPASSFILE): else the watcher still finds gaps but neither stalls nor
// slot lag, and says so in its log.
func startWALWatchers(ctx context.Context, setup *wire.Setup, backups policy.Lister, state *coord.State, alerter *alert.Alerter, log *logrus.Entry) ([]*loop.Service, error) {
	if len(setup.WALArchives) == 0 {
		return nil, nil
	}
	lag, err := configs.ParseSlotLagAlert(setup.Config.WALSlotLagAlert)
	if err != nil { // Validate checked it
		return nil, configs.Bad("WAL_SLOT_LAG_ALERT", "%w", err)
	}
	all, err := wire.Stores(ctx, setup)
	if err != nil {
		return nil, err
	}
	var out []*loop.Service
	for _, a := range setup.WALArchives {
		arch, err := wire.OpenWALArchive(setup, a, all, log)
		if err != nil {
			for _, s := range out {
				s.Stop()
			}
			return nil, err
		}
		w := &scheduling.WALWatcher{Archive: a.Name, Targets: a.Targets, Scanner: arch, Backups: backups, State: state,
			Server: scheduling.ServerFlushLSN(a.Conn), StallAfter: setup.Config.WALStallAfter,
			Slot: scheduling.ServerSlot(a.Conn, a.Slot), SlotName: a.Slot, Record: state,
			SlotLag: scheduling.SlotLagAlert{Percent: lag.Percent, Bytes: lag.Bytes},
			Alerts:  alerter, Interval: setup.Config.WALCheckInterval, Log: log}
		out = append(out, w.Start(ctx))
	}
	return out, nil
}
