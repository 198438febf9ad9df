package services_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/internal/testbench/procfs"
	"github.com/autograph/pgbackup/internal/testbench/services"
)

// reachable reports whether each server of env answers.
func reachable(t *testing.T, env services.Env) map[services.Service]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[services.Service]bool{}
	pgURL := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", env.PGUser, env.PGPassword,
		net.JoinHostPort(env.PGHost, env.PGPort), env.PGDatabase)
	if conn, err := pgx.Connect(ctx, pgURL); err == nil {
		out[services.Postgres] = conn.Ping(ctx) == nil
		conn.Close(ctx)
	}
	if c, err := net.DialTimeout("tcp", env.RedisAddr, time.Second); err == nil {
		out[services.Redis] = true
		c.Close()
	}
	if resp, err := http.Get(env.MinIOEndpoint + "/minio/health/live"); err == nil {
		out[services.MinIO] = resp.StatusCode == http.StatusOK
		resp.Body.Close()
	}
	return out
}

// TestLifecycle starts a bench, stops and restarts each server, opens the
// bench again as another process would, and stops it.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	testbench.Require(t) // the programs are installed
	opts := services.OptionsFromEnv(os.LookupEnv)
	opts.Log = t.Output()
	dir := filepath.Join(t.TempDir(), "bench")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if b, err := services.Open(dir, opts); err == nil {
			_ = b.Stop(context.Background())
		}
	})
	b, err := services.Start(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	env, err := b.Env()
	if err != nil {
		t.Fatal(err)
	}
	if got := reachable(t, env); len(got) != 3 || !got[services.Postgres] || !got[services.Redis] || !got[services.MinIO] {
		t.Fatalf("after Start, reachable = %v, want all three", got)
	}
	if _, err := services.Start(ctx, dir, opts); !errors.Is(err, services.ErrExists) {
		t.Errorf("second Start in the same directory = %v, want ErrExists", err)
	}

	for _, s := range services.Services() {
		pid := b.Pid(s)
		if pid == 0 {
			t.Fatalf("Pid(%v) = 0 while it runs", s)
		}
		if err := b.StopService(ctx, s); err != nil {
			t.Fatal(err)
		}
		if procfs.Alive(pid) || b.Pid(s) != 0 {
			t.Errorf("%v (pid %d) still runs after StopService", s, pid)
		}
		if reachable(t, env)[s] {
			t.Errorf("%v answers after StopService", s)
		}
		if err := b.StartService(ctx, s); err != nil {
			t.Fatal(err)
		}
		if !reachable(t, env)[s] {
			t.Errorf("%v does not answer after StartService on its old port", s)
		}
	}

	// Another process knows the bench by its directory only.
	again, err := services.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[services.Service]int{}
	for _, s := range services.Services() {
		if pids[s] = again.Pid(s); pids[s] == 0 || pids[s] != b.Pid(s) {
			t.Errorf("reopened bench: Pid(%v) = %d, want %d", s, pids[s], b.Pid(s))
		}
	}
	if err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for s, pid := range pids {
		if procfs.Alive(pid) {
			t.Errorf("%v (pid %d) still runs after Stop", s, pid)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("directory after Stop: %v, want it removed", err)
	}
}

func TestOpenRefusesForeignDirectories(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := services.Open(dir, services.Options{}); !errors.Is(err, services.ErrNotBench) {
		t.Errorf("Open of a directory without the marker = %v, want ErrNotBench", err)
	}
	if _, err := services.Start(context.Background(), dir, services.Options{}); !errors.Is(err, services.ErrNotBench) {
		t.Errorf("Start in a non-empty directory = %v, want ErrNotBench", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Errorf("a refused Start touched the directory: %v", err)
	}
	if _, err := services.Open(filepath.Join(dir, "nope"), services.Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing directory = %v, want fs.ErrNotExist", err)
	}
}
