// Package testbench gives Go tests the PostgreSQL, Redis and MinIO servers
// of the test bench (package services; `make test` starts one through
// cmd/testbench run and exports its PGBACKUP_TEST_* variables).
//
// Tests never fall back to servers that happen to run on the machine:
// without the bench's environment they skip, and under `make test`
// (PGBACKUP_TEST_REQUIRED=1) they fail instead, so a broken bench cannot
// turn the suite green by skipping everything.
package testbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/testbench/services"
)

// Env is how to reach the bench: its fields are the PGBACKUP_TEST_*
// variables (services.Env), its methods the helpers tests share.
type Env struct {
	services.Env
	// PGSSLMode is the sslmode of the helpers' own connections (PGURL);
	// empty means disable, which the bench's servers accept. A test that
	// makes its server refuse unencrypted sessions sets it (require).
	PGSSLMode string
}

// The bench's servers, for StopService and StartService.
const (
	Postgres = services.Postgres
	Redis    = services.Redis
	MinIO    = services.MinIO
)

// Lookup reads the environment; ok is false when the bench is not running.
func Lookup() (Env, bool) {
	e, ok := services.EnvFrom(os.LookupEnv)
	return Env{Env: e}, ok
}

// Require returns the bench or stops the test: skipped normally, failed when
// PGBACKUP_TEST_REQUIRED is set.
func Require(t testing.TB) Env {
	t.Helper()
	e, ok := Lookup()
	if !ok {
		if os.Getenv("PGBACKUP_TEST_REQUIRED") != "" {
			t.Fatal("testbench: PGBACKUP_TEST_* variables missing although PGBACKUP_TEST_REQUIRED is set; run through `make test`")
		}
		t.Skip("testbench: not running; use `make test` or source .testbench/env")
	}
	if testing.Short() {
		t.Skip("testbench: skipped in -short mode")
	}
	return e
}

// open finds the bench of e, with its messages in the test's output.
func (e Env) open(t testing.TB) *services.Bench {
	t.Helper()
	opts := services.OptionsFromEnv(os.LookupEnv)
	opts.Log = t.Output()
	b, err := services.Open(e.Dir, opts)
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	return b
}

// StopService stops one of the bench's servers so a test can observe an
// outage; StartService brings it back on the same port. Use them on a
// private bench (StartPrivate) only: other packages' tests share the
// main one.
func (e Env) StopService(t testing.TB, s services.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.open(t).StopService(ctx, s); err != nil {
		t.Fatalf("testbench: %v", err)
	}
}

// StartService starts a server stopped by StopService and waits until it
// answers.
func (e Env) StartService(t testing.TB, s services.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.open(t).StartService(ctx, s); err != nil {
		t.Fatalf("testbench: %v", err)
	}
}

// PGURL is a libpq URL for database db with the bench's password role.
func (e Env) PGURL(db string) string {
	mode := e.PGSSLMode
	if mode == "" {
		mode = "disable"
	}
	return fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=%s", e.PGUser, e.PGPassword, e.PGHost, e.PGPort, db, mode)
}

// UniqueName returns a name safe as a database, bucket or backup name that
// no other test of this run uses.
func UniqueName(prefix string) string {
	return strings.ToLower(fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9))
}

// StartPrivate starts a bench of its own for one test, stopped when the
// test ends. Tests that stop or restart a service use one, so that other
// packages' tests, which run at the same time on the shared bench, never
// see the outage. extraEnv holds settings as NAME=value, over this
// process's environment (for example TESTBENCH_REDIS_PERSIST=1; see
// services.OptionsFromEnv).
func (e Env) StartPrivate(t testing.TB, extraEnv ...string) Env {
	t.Helper()
	return startPrivate(t, func(*services.Options) {}, extraEnv...)
}

// StartPITRPostgres starts a private PostgreSQL alone (no Redis, no MinIO
// in the returned Env) set up for WAL archiving: fsync on, wal_level
// replica, max_wal_senders 4, max_slot_wal_keep_size 256MB (ALTER SYSTEM,
// so a test may change it and reload), and PGUser with REPLICATION.
// PGSocket reaches it as the superuser postgres without a password.
func (e Env) StartPITRPostgres(t testing.TB) Env {
	t.Helper()
	return e.StartPITRPostgresWith(t, PITROptions{})
}

// PITROptions change the server StartPITRPostgresWith starts.
type PITROptions struct {
	// WALSegSizeMB is initdb's --wal-segsize (MiB; 0: PostgreSQL's 16).
	WALSegSizeMB int
}

// StartPITRPostgresWith is StartPITRPostgres with options: 1 MiB WAL
// segments, so that a test's load crosses segments in seconds.
func (e Env) StartPITRPostgresWith(t testing.TB, po PITROptions) Env {
	t.Helper()
	return startPrivate(t, func(o *services.Options) {
		o.PostgresOnly = true
		o.PITR = true
		o.WALSegSizeMB = po.WALSegSizeMB
	})
}

func startPrivate(t testing.TB, configure func(*services.Options), extraEnv ...string) Env {
	t.Helper()
	extra := map[string]string{}
	for _, kv := range extraEnv {
		k, v, _ := strings.Cut(kv, "=")
		extra[k] = v
	}
	opts := services.OptionsFromEnv(func(k string) (string, bool) {
		if v, ok := extra[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	})
	opts.Log = t.Output()
	configure(&opts)
	dir := filepath.Join(t.TempDir(), "bench")
	// Stop it even when the start fails half way: PostgreSQL's files may
	// live outside the test's temporary directory.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		b, err := services.Open(dir, opts)
		if err != nil {
			return // never got as far as creating it
		}
		if err := b.Stop(ctx); err != nil {
			t.Errorf("testbench: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := services.Start(ctx, dir, opts)
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	env, err := b.Env()
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	return Env{Env: env}
}
