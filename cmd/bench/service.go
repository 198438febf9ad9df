package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench/procfs"
)

// benchToken is the admin token of the service the bench starts.
const benchToken = "bench-admin-token-0123456789abcdef"

// service is the API and one worker, run from bin/ against the bench, each
// with its own Redis database so that runs never see each other's tasks.
type service struct {
	progs  *harness.Group
	url    string
	api    *harness.Proc
	worker *harness.Proc
	logs   string
	// hc is shared by the typed client, the harness's readiness probe and
	// the soak: one pool of connections, sized for the load test.
	hc *http.Client
	// cli is the typed client of the latest API started.
	cli *client.Client
}

// newService prepares (does not start) a service whose programs get the
// engine's environment plus extra.
func (b *bench) newService(name string, redisDB int, extra ...string) (*service, error) {
	logs := filepath.Join(b.tmp, name+"-logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	// The bench's Redis outlives runs: start from an empty database, so no
	// task or reservation of an earlier run is in the way.
	rdb := redis.NewClient(&redis.Options{Addr: b.env.RedisAddr, DB: redisDB})
	err := rdb.FlushDB(context.Background()).Err()
	rdb.Close()
	if err != nil {
		return nil, fmt.Errorf("flush redis db %d: %w", redisDB, err)
	}
	env := append(b.engineEnv(""), "REDIS_ADDR="+b.env.RedisAddr, "REDIS_DB="+strconv.Itoa(redisDB),
		"API_ADMIN_TOKENS="+benchToken, "BACKUP_ENABLED=false", "WORKER_CONCURRENCY=1", "LOG_LEVEL=warn",
		"TASK_RETRY_DELAY=1s", "API_AUTH_FAILURES_PER_MINUTE=100000")
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	// The programs are beside -pgbackup; should the bench die, they go too.
	progs := &harness.Group{Bin: filepath.Dir(b.o.pgbackup), Logs: logs, Env: append(env, extra...),
		DeathSignal: syscall.SIGKILL, Client: hc}
	return &service{progs: progs, logs: logs, hc: hc}, nil
}

// startAPI starts the API on a free port and waits until it is ready.
func (s *service) startAPI(ctx context.Context) error {
	var err error
	if s.api, s.url, err = s.progs.StartAPI(ctx, "api", ""); err != nil {
		return err
	}
	s.cli, err = client.New(s.url, benchToken, client.WithHTTPClient(s.hc))
	return err
}

// startWorker starts a worker with extra settings (its codec, say) and
// waits until it has started.
func (s *service) startWorker(ctx context.Context, extra ...string) error {
	var err error
	if s.worker, err = s.progs.Start("worker", harness.Worker, extra...); err != nil {
		return err
	}
	return s.worker.WaitLog(ctx, "worker started", 30*time.Second)
}

func (s *service) stopWorker() {
	if s.worker != nil {
		_ = s.worker.Stop(syscall.SIGTERM, 0)
		s.worker = nil
	}
}

// stop stops every program the service started.
func (s *service) stop() { _ = s.progs.StopAll() }

// backup enqueues a backup and waits until it completes.
func (s *service) backup(ctx context.Context, req client.CreateBackupRequest) (*client.Task, error) {
	a, err := s.cli.CreateBackup(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.wait(ctx, a.TaskID)
}

// restore enqueues a restore and waits until it completes.
func (s *service) restore(ctx context.Context, req client.RestoreBackupRequest) (*client.Task, error) {
	a, err := s.cli.RestoreBackup(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.wait(ctx, a.TaskID)
}

// wait reads the task's status every 50 ms (the wait is part of what is
// timed) until it completes. A task that failed, even once, is an error:
// a retried run would measure the wrong thing. (client.WaitTask waits
// through retries and stops at the first failed read, so it does not fit.)
func (s *service) wait(ctx context.Context, id string) (*client.Task, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		st, err := s.cli.Task(ctx, id)
		if err != nil {
			continue // a status read that failed is read again
		}
		switch st.State {
		case client.StateCompleted:
			return st, nil
		case client.StateArchived, client.StateRetry:
			return nil, fmt.Errorf("task %s %s: %s %s", id, st.State, st.Error, st.ErrorDetail)
		}
	}
}

// watch samples a process tree's memory and a directory's size until
// stop is called: the worker's own peak, the largest sum over the worker
// and its children (pg_dump), and the most bytes the directory held.
type watch struct {
	done                  chan struct{}
	stopped               chan struct{}
	hwmKiB, treeKiB, disk int64
}

func watchProcess(pid int, dir string) *watch {
	w := &watch{done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(w.stopped)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			_, hwm := procfs.Memory(pid)
			w.hwmKiB = max(w.hwmKiB, hwm)
			tree := int64(0)
			for _, p := range append([]int{pid}, procfs.Descendants(pid)...) {
				rss, _ := procfs.Memory(p)
				tree += rss
			}
			w.treeKiB = max(w.treeKiB, tree)
			w.disk = max(w.disk, dirSize(dir))
			select {
			case <-w.done:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *watch) stop() { close(w.done); <-w.stopped }

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func shortCodec(c string) string { return strings.ReplaceAll(c, ":", "") }
