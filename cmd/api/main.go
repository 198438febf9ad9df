// Command api serves the HTTP API and the queue UI. It enqueues work for the
// workers and never runs pg_dump itself.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/handlers"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	setup, err := wire.Load(wire.API)
	if err != nil {
		return err
	}
	cfg := setup.Config
	log := configs.NewLogger(cfg, "api", os.Stderr)
	auth, err := newAuth(cfg, log)
	if err != nil {
		return err
	}
	eng, err := wire.Engine(ctx, setup, log)
	if err != nil {
		return err
	}
	redisOpt := wire.RedisOpt(setup)
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	inspector := asynq.NewInspector(redisOpt)
	defer inspector.Close()
	rdb, err := wire.Redis(setup)
	if err != nil {
		return err
	}
	defer rdb.Close()
	queue, closeQueue, err := wire.ReplicatedQueue(setup, client, log)
	if err != nil {
		return err
	}
	defer closeQueue()
	locks := coord.NewLocks(rdb)
	keyCheck, err := wire.SigningKeyCheck(ctx, setup, locks, log)
	if err != nil {
		return err
	}
	proxies, err := cfg.TrustedProxies()
	if err != nil {
		return err
	}
	targets := setup.Targets
	state := coord.NewState(rdb)
	names := coord.NewNameIndex(eng, rdb, 5*time.Second, log)
	go names.Run(ctx)
	pitr, err := wire.PITRArchives(ctx, setup, log)
	if err != nil {
		return err
	}

	e := handlers.New(handlers.Deps{
		Backups:               eng,
		Queue:                 queue,
		Inspector:             inspector,
		Ping:                  func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		TaskOptions:           wire.TaskOptions(cfg),
		Log:                   log,
		Monitoring:            asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: redisOpt}),
		Auth:                  auth,
		Locks:                 locks,
		ReserveTTL:            tasks.ReservationTTL(wire.TaskOptions(cfg)),
		TrustedProxies:        proxies,
		AuthFailuresPerMinute: cfg.APIAuthFailuresPerMinute,
		Audit:                 coord.NewAuditTrail(rdb, 0),
		AuditLog:              configs.NewLogger(cfg, "api", os.Stderr).WithField("audit", true),
		Names:                 names,
		Buckets:               wire.Buckets(setup, log),
		Targets:               targets,
		State:                 state,
		Tasks:                 inspector,
		PITR:                  pitr,
		Metrics:               handlers.NewMetrics(targets, state, inspector, version, handlers.ManifestTrust{Signing: setup.Signer.Enabled(), Backups: eng}, log),
		MetricsPublic:         cfg.MetricsPublic,
		Idempotency:           coord.NewIdempotency(rdb, cfg.APIIdempotencyTTL),
		RefuseUnsigned:        setup.Signer.RefusesUnsigned(),
	})
	return serve(ctx, cfg, handlers.NewHTTPServer(cfg.APIAddr, e, handlers.DefaultTimeouts()), keyCheck, log)
}

// newAuth builds the token check; the API refuses to start without an
// admin token unless authentication is explicitly off.
func newAuth(cfg configs.Config, log *logrus.Entry) (handlers.Auth, error) {
	admin, viewer, err := wire.APITokens(cfg)
	if err != nil {
		return handlers.Auth{}, err
	}
	auth, err := handlers.NewAuth(admin, viewer, cfg.APIAuthDisabled)
	if err != nil {
		return handlers.Auth{}, fmt.Errorf("API_ADMIN_TOKENS: %w; set one, or API_AUTH_DISABLED=true for a local experiment", err)
	}
	if cfg.APIAuthDisabled {
		log.Warn("API_AUTH_DISABLED=true: every request is treated as admin; never expose this API")
	}
	return auth, nil
}

// serve listens (with TLS when configured) until ctx ends, the listener
// fails or the signing key check says this process must stop, then shuts
// the server down gracefully.
func serve(ctx context.Context, cfg configs.Config, srv *http.Server, keyCheck <-chan error, log *logrus.Entry) error {
	errc := make(chan error, 1)
	tlsOn := cfg.APITLSCertFile != ""
	if tlsOn {
		// Loaded now so that a bad file stops the start with its setting's name.
		cert, err := tls.LoadX509KeyPair(cfg.APITLSCertFile, cfg.APITLSKeyFile)
		if err != nil {
			return fmt.Errorf("API_TLS_CERT_FILE / API_TLS_KEY_FILE: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		go func() { errc <- srv.ListenAndServeTLS("", "") }()
	} else {
		go func() { errc <- srv.ListenAndServe() }()
	}
	log.WithFields(map[string]any{"addr": cfg.APIAddr, "tls": tlsOn, "config": cfg.String()}).Info("api listening")
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("listen %s: %w", cfg.APIAddr, err)
		case err := <-keyCheck:
			if err != nil {
				return err
			}
			keyCheck = nil
			continue
		case <-ctx.Done():
		}
		break
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("api stopped")
	return nil
}
