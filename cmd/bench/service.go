package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

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
	client *http.Client
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
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	// The programs are beside -pgbackup; should the bench die, they go too.
	progs := &harness.Group{Bin: filepath.Dir(b.o.pgbackup), Logs: logs, Env: append(env, extra...),
		DeathSignal: syscall.SIGKILL, Client: client}
	return &service{progs: progs, logs: logs, client: client}, nil
}

// startAPI starts the API on a free port and waits until it is ready.
func (s *service) startAPI(ctx context.Context) error {
	var err error
	s.api, s.url, err = s.progs.StartAPI(ctx, "api", "")
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

// call sends a request with the admin token and decodes the JSON answer.
func (s *service) call(ctx context.Context, method, path string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+benchToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, nil
}

// run enqueues one task (POST path body, want 202) and waits until it
// completes; it returns the task's result.
func (s *service) run(ctx context.Context, path string, body any) (map[string]any, error) {
	code, out, err := s.call(ctx, http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	if code != http.StatusAccepted {
		return nil, fmt.Errorf("POST %s: %d %v", path, code, out)
	}
	id, _ := out["task_id"].(string)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		code, st, err := s.call(ctx, http.MethodGet, "/api/admin/tasks/"+id, nil)
		if err != nil || code != http.StatusOK {
			continue
		}
		switch st["state"] {
		case "completed":
			res, _ := st["result"].(map[string]any)
			return res, nil
		case "archived", "retry":
			return nil, fmt.Errorf("task %s %s: %v %v", id, st["state"], st["error"], st["error_detail"])
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
