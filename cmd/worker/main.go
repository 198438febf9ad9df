// Command worker runs backup, restore and delete tasks from the queue. Run
// as many as you like, on as many machines as you like, against one Redis.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/jobs/worker"
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
	setup, err := wire.Load(wire.Worker)
	if err != nil {
		return err
	}
	cfg := setup.Config
	log := configs.NewLogger(cfg, "worker", os.Stderr).WithField("worker", worker.ProcessID())
	if cfg.WorkerMemoryLimitMB > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// Without a limit the heap may grow to twice what is live between
		// collections; backups churn through buffers, so collect sooner.
		debug.SetMemoryLimit(int64(cfg.WorkerMemoryLimitMB) << 20)
	}
	if setup.Signer.Enabled() && !setup.Signer.CanSign() {
		// A worker writes manifests: one that can only verify would
		// spend a whole dump before failing to sign it.
		return configs.Bad("BACKUP_SIGNING_PRIVATE_KEY_FILE", "a worker writes manifests and needs a key to sign them: set BACKUP_SIGNING_PRIVATE_KEY_FILE (or BACKUP_SIGNING_KEY), not only public keys")
	}
	eng, err := wire.Engine(ctx, setup, log)
	if err != nil {
		return err
	}
	redisOpt := wire.RedisOpt(setup)
	srv, err := worker.NewServer(redisOpt, wire.ServerOptions(setup), log)
	if err != nil {
		return err
	}
	rdb, err := wire.Redis(setup)
	if err != nil {
		return err
	}
	defer rdb.Close()
	locks := coord.NewLocks(rdb)
	keyCheck, err := wire.SigningKeyCheck(ctx, setup, locks, log)
	if err != nil {
		return err
	}
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	inspector := asynq.NewInspector(redisOpt)
	defer inspector.Close()
	mux := asynq.NewServeMux()
	alerter := wire.Alerter(cfg, client, log)
	w := &worker.Runtime{Log: log, ID: worker.ProcessID(), Locks: locks,
		ReserveTTL: tasks.ReservationTTL(wire.TaskOptions(cfg)), Alerts: alerter}
	state := coord.NewState(rdb)
	ledger := &worker.Ledger{State: state, Queue: client, TaskOptions: wire.TaskOptions(cfg), Log: log}
	buckets := wire.Buckets(setup, log)
	targets := setup.Targets
	pitr, err := wire.PITRArchives(ctx, setup, log)
	if err != nil {
		return err
	}
	ledger.PITR = pitr
	w.Register(mux,
		&worker.BackupWorker{Engine: eng, Targets: targets, Ledger: ledger, Alerts: alerter},
		&worker.RestoreWorker{Engine: eng, Targets: targets},
		&worker.DeleteWorker{Engine: eng, Ledger: ledger},
		&worker.VerifyWorker{Engine: eng},
		&worker.PruneWorker{Engine: eng, Targets: targets, Queue: inspector, Ledger: ledger, PITR: pitr, Log: log},
		&worker.DrillWorker{Engine: eng, Targets: targets, State: state, Log: log},
		&worker.AlertWorker{Webhooks: alerter.Webhooks(), Secret: alerter.Secret, Client: alerter.Client},
		&worker.BucketBackupWorker{Engine: eng, Buckets: buckets, Targets: targets, Ledger: ledger},
		&worker.BucketRestoreWorker{Engine: eng, Buckets: buckets},
		&worker.AdoptWorker{Engine: eng, Targets: targets, Queue: inspector, Ledger: ledger},
		&worker.BaseBackupWorker{Engine: eng, Targets: targets, Ledger: ledger, WALArchiveOf: func(t string) (worker.WALArchive, bool) {
			a, ok := setup.WALArchiveOf(t)
			return worker.WALArchive{Name: a.Name, Conn: a.Conn, Stores: a.Stores}, ok
		}},
	)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	log.WithField("config", cfg.String()).Info("worker started")
	var keyErr error
	select {
	case <-ctx.Done():
	case keyErr = <-keyCheck:
		if keyErr == nil {
			<-ctx.Done()
		}
	}
	if keyErr != nil {
		log.WithError(keyErr).Error("stopping: the signing key differs from the deployment's")
		srv.Shutdown()
		w.Drain(30 * time.Second)
		return keyErr
	}
	log.WithField("grace", cfg.WorkerShutdownTimeout.String()).Info("stopping: no new tasks; running ones get the grace period")
	srv.Shutdown()
	if !w.Drain(30 * time.Second) {
		log.Warn("handlers still running 30s after shutdown; exiting anyway")
	}
	log.Info("worker stopped")
	return nil
}
