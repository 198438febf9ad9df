package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/autograph/pgbackup/internal/testbench/services"
)

// program is one of the service's programs the demo runs.
type program struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once it has exited
	err  error         // how it exited, once done
}

func (p *program) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError says that p exited, with the end of its log.
func (p *program) exitError() error {
	return fmt.Errorf("%s (pid %d) exited (%v); see %s; its last lines:\n%s",
		p.name, p.cmd.Process.Pid, p.err, p.log, services.LastLines(p.log, 20))
}

// anyExited fails when one of the programs has exited: the demo is broken.
func (d *demo) anyExited() error {
	for _, p := range d.procs {
		if p.exited() {
			return p.exitError()
		}
	}
	return nil
}

// settings are the programs' configuration (configs/config.go): every
// setting they read is set, and the demo listens on loopback only.
func (d *demo) settings(apiPort int) [][2]string {
	return [][2]string{
		{"POSTGRES_HOST", d.env.PGHost},
		{"POSTGRES_PORT", d.env.PGPort},
		{"POSTGRES_USER", d.env.PGUser},
		{"POSTGRES_PASSWORD", d.env.PGPassword},
		{"POSTGRES_DB", sourceDB},
		{"POSTGRES_SSLMODE", "disable"},
		{"BACKUP_DIR", filepath.Join(d.dir, "backups")},
		{"WORK_DIR", filepath.Join(d.dir, "work")},
		{"MINIO_ENDPOINT", d.env.MinIOEndpoint},
		{"MINIO_ROOT_USER", d.env.MinIOUser},
		{"MINIO_ROOT_PASSWORD", d.env.MinIOPassword},
		{"REDIS_ADDR", d.env.RedisAddr},
		{"API_ADDR", "127.0.0.1:" + strconv.Itoa(apiPort)},
		{"API_ADMIN_TOKENS", d.adminToken},
		{"API_VIEWER_TOKENS", d.viewerToken},
		{"BACKUP_ENABLED", "true"},
		{"BACKUP_INTERVAL_HOURS", "24"},
		{"TASK_RETRY_DELAY", "2s"},
		// Short, so that Ctrl-C does not wait a minute for a running task.
		{"WORKER_SHUTDOWN_TIMEOUT", "10s"},
		{"LOG_LEVEL", "info"},
	}
}

// unsetSettings would override the settings above; the programs must not
// inherit them.
var unsetSettings = []string{"CONFIG_FILE", "PG_BIN_DIR", "API_AUTH_DISABLED", "BACKUP_SCHEDULE"}

// programEnv is this process's environment with the settings replaced.
func programEnv(settings [][2]string) []string {
	drop := map[string]bool{}
	for _, k := range unsetSettings {
		drop[k] = true
	}
	for _, kv := range settings {
		drop[kv[0]] = true
	}
	var out []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			out = append(out, kv)
		}
	}
	for _, kv := range settings {
		out = append(out, kv[0]+"="+kv[1])
	}
	return out
}

func (d *demo) startPrograms(ctx context.Context) error {
	port, err := d.apiPort()
	if err != nil {
		return err
	}
	d.adminToken, d.viewerToken = token("demo-admin-"), token("demo-viewer-")
	d.api = apiClient{base: "http://127.0.0.1:" + strconv.Itoa(port), token: d.adminToken,
		http: &http.Client{Timeout: 10 * time.Second}}
	environ := programEnv(d.settings(port))

	d.out.step("Starting the API, two workers and the scheduler")
	for _, p := range []struct{ name, bin string }{
		{"api", "api"}, {"worker-1", "worker"}, {"worker-2", "worker"}, {"scheduler", "scheduler"},
	} {
		if err := d.startProgram(p.name, filepath.Join(d.root, "bin", p.bin), environ); err != nil {
			return err
		}
	}
	err = pollUntil(ctx, 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		if err := d.anyExited(); err != nil {
			return false, err
		}
		return d.api.ready(ctx), nil
	})
	if err != nil {
		return fmt.Errorf("the API did not become ready at %s/readyz: %w\n%s", d.api.base, err,
			services.LastLines(d.procs[0].log, 20))
	}
	d.out.say("API ready at %s", d.api.base)
	return nil
}

func (d *demo) startProgram(name, bin string, environ []string) error {
	logPath := filepath.Join(d.dir, "logs", name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	defer log.Close() // the child has its own copy
	cmd := exec.Command(bin)
	cmd.Env = environ
	cmd.Stdout, cmd.Stderr = log, log
	// Should the demo die without its cleanup, the programs go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &program{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	d.procs = append(d.procs, p)
	d.out.say("%s: pid %d (log %s)", name, cmd.Process.Pid, logPath)
	return nil
}

// stopPrograms sends SIGTERM to all programs at once (workers hand running
// tasks back within WORKER_SHUTDOWN_TIMEOUT) and SIGKILLs whatever is left
// after 30 s.
func (d *demo) stopPrograms() {
	for _, p := range d.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	grace, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range d.procs {
		select {
		case <-p.done:
		case <-grace.Done():
			d.out.warn("%s (pid %d) did not stop after 30 s: SIGKILL", p.name, p.cmd.Process.Pid)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	d.procs = nil
}

// errTimeout is pollUntil's error when the condition never held.
var errTimeout = errors.New("timed out")

// pollUntil calls check every interval until it reports done or fails,
// timeout passes or ctx ends.
func pollUntil(ctx context.Context, timeout, interval time.Duration, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %s", errTimeout, timeout))
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if done, err := check(); err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}
