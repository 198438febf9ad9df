// Package testbench gives Go tests the PostgreSQL, Redis and MinIO servers
// that scripts/testbench.sh started on free loopback ports.
//
// Tests never start services themselves and never fall back to servers that
// happen to run on the machine: without the script's environment they skip,
// and under `make test` (PGBACKUP_TEST_REQUIRED=1) they fail instead, so a
// broken bench cannot turn the suite green by skipping everything.
package testbench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Env is what the bench script exported.
type Env struct {
	Dir           string
	PGHost        string
	PGPort        string
	PGUser        string
	PGPassword    string
	PGDatabase    string
	PGBin         string
	RedisAddr     string
	MinIOEndpoint string
	MinIOUser     string
	MinIOPassword string
	Script        string
}

// Lookup reads the environment; ok is false when the bench is not running.
func Lookup() (Env, bool) {
	e := Env{
		Dir:           os.Getenv("PGBACKUP_TEST_DIR"),
		PGHost:        os.Getenv("PGBACKUP_TEST_PG_HOST"),
		PGPort:        os.Getenv("PGBACKUP_TEST_PG_PORT"),
		PGUser:        os.Getenv("PGBACKUP_TEST_PG_USER"),
		PGPassword:    os.Getenv("PGBACKUP_TEST_PG_PASSWORD"),
		PGDatabase:    os.Getenv("PGBACKUP_TEST_PG_DB"),
		PGBin:         os.Getenv("PGBACKUP_TEST_PG_BIN"),
		RedisAddr:     os.Getenv("PGBACKUP_TEST_REDIS_ADDR"),
		MinIOEndpoint: os.Getenv("PGBACKUP_TEST_MINIO_ENDPOINT"),
		MinIOUser:     os.Getenv("PGBACKUP_TEST_MINIO_USER"),
		MinIOPassword: os.Getenv("PGBACKUP_TEST_MINIO_PASSWORD"),
		Script:        os.Getenv("PGBACKUP_TEST_TESTBENCH"),
	}
	ok := e.PGPort != "" && e.RedisAddr != "" && e.MinIOEndpoint != ""
	return e, ok
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

// StopService stops one bench service ("redis", "minio", "postgres") so a
// test can observe an outage; StartService brings it back on the same port.
func (e Env) StopService(t testing.TB, name string) {
	t.Helper()
	e.runScript(t, "svc-stop", name)
}

// StartService starts a service stopped by StopService and waits for it.
func (e Env) StartService(t testing.TB, name string) {
	t.Helper()
	e.runScript(t, "svc-start", name)
}

func (e Env) runScript(t testing.TB, verb, name string) {
	t.Helper()
	if e.Script == "" {
		t.Fatal("testbench: PGBACKUP_TEST_TESTBENCH not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", e.Script, verb, name, e.Dir).CombinedOutput()
	if err != nil {
		t.Fatalf("testbench %s %s: %v\n%s", verb, name, err, out)
	}
}

// PGURL is a libpq URL for database db with the bench's password role.
func (e Env) PGURL(db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=disable", e.PGUser, e.PGPassword, e.PGHost, e.PGPort, db)
}

// UniqueName returns a name safe as a database, bucket or backup name that
// no other test of this run uses.
func UniqueName(prefix string) string {
	return strings.ToLower(fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9))
}

// StartPrivate starts a bench of its own for one test, stopped when the
// test ends. Tests that stop or restart a service use one, so that other
// packages' tests, which run at the same time on the shared bench, never
// see the outage. extraEnv is passed to the script (for example
// TESTBENCH_REDIS_PERSIST=1).
func (e Env) StartPrivate(t testing.TB, extraEnv ...string) Env {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bench")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", e.Script, "start", dir)
	cmd.Env = append(os.Environ(), extraEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testbench start %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		out, err := exec.Command("bash", e.Script, "stop", dir).CombinedOutput()
		if err != nil {
			t.Logf("testbench stop %s: %v\n%s", dir, err, out)
		}
	})
	b, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimPrefix(line, "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = unquote(v)
		}
	}
	p := Env{
		Dir: vars["PGBACKUP_TEST_DIR"], PGHost: vars["PGBACKUP_TEST_PG_HOST"], PGPort: vars["PGBACKUP_TEST_PG_PORT"],
		PGUser: vars["PGBACKUP_TEST_PG_USER"], PGPassword: vars["PGBACKUP_TEST_PG_PASSWORD"], PGDatabase: vars["PGBACKUP_TEST_PG_DB"],
		PGBin: vars["PGBACKUP_TEST_PG_BIN"], RedisAddr: vars["PGBACKUP_TEST_REDIS_ADDR"],
		MinIOEndpoint: vars["PGBACKUP_TEST_MINIO_ENDPOINT"], MinIOUser: vars["PGBACKUP_TEST_MINIO_USER"],
		MinIOPassword: vars["PGBACKUP_TEST_MINIO_PASSWORD"], Script: e.Script,
	}
	if p.PGPort == "" || p.RedisAddr == "" || p.MinIOEndpoint == "" {
		t.Fatalf("private bench env incomplete: %v", vars)
	}
	return p
}

// unquote undoes bash's printf %q for the simple values the script writes.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return strings.ReplaceAll(v[1:len(v)-1], `'\''`, `'`)
	}
	return strings.ReplaceAll(v, `\`, "")
}
