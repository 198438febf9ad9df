package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// DefaultStopTimeout is how long Stop and StopAll wait after SIGTERM
// before SIGKILL when the Group sets none: a worker hands its running
// task back within WORKER_SHUTDOWN_TIMEOUT.
const DefaultStopTimeout = 30 * time.Second

// DefaultReadyTimeout is how long StartAPI waits for /readyz.
const DefaultReadyTimeout = 30 * time.Second

// Group is one deployment of the service: programs started from Bin with
// a shared environment, logging into Logs. Set its fields before the
// first Start; it is safe for concurrent use afterwards, except Env.
type Group struct {
	// Bin is the directory holding the built programs (see Build).
	Bin string
	// Logs is where each program's output goes, as <name>.log.
	Logs string
	// Env is every program's environment. A program's own extra variables
	// come after it, and the last assignment of a name wins (os/exec).
	Env []string
	// OwnProcessGroup puts each program in a process group of its own, so
	// that a terminal's Ctrl-C or a test's signal reaches the program only
	// and its pg_dump children must die through Pdeathsig, as in
	// production.
	OwnProcessGroup bool
	// DeathSignal is sent to a program when this process dies without
	// stopping it (Linux Pdeathsig); 0 sends none.
	DeathSignal syscall.Signal
	// StopTimeout is the grace after SIGTERM; DefaultStopTimeout when 0.
	StopTimeout time.Duration
	// Client probes readiness; a client with a 5 s timeout when nil.
	Client *http.Client

	mu    sync.Mutex
	procs []*Proc
}

// Start runs program from g.Bin as name (its log is name.log) with g.Env
// plus extra, and returns at once: wait for what it should do with the
// Proc's Wait methods.
func (g *Group) Start(name, program string, extra ...string) (*Proc, error) {
	p := &Proc{Name: name, Program: program, Log: filepath.Join(g.Logs, name+".log"), g: g, extra: extra}
	if err := p.start(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	return p, nil
}

// StartAPI starts the api as name, listening on addr (a free loopback port
// when empty), and waits until its /readyz answers 200. It returns the
// API's base URL; on failure the Proc, if started, is returned too.
func (g *Group) StartAPI(ctx context.Context, name, addr string, extra ...string) (*Proc, string, error) {
	if addr == "" {
		var err error
		if addr, err = FreeAddr(); err != nil {
			return nil, "", err
		}
	}
	p, err := g.Start(name, API, append([]string{"API_ADDR=" + addr}, extra...)...)
	if err != nil {
		return nil, "", err
	}
	url := "http://" + addr
	if err := p.WaitHTTP(ctx, nil, url+"/readyz", DefaultReadyTimeout); err != nil {
		return p, url, err
	}
	return p, url, nil
}

// Command prepares a one-shot run of program with g.Env plus extra, for
// a program expected to exit by itself (the CLI, a refused start).
func (g *Group) Command(program string, args []string, extra ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(g.Bin, program), args...)
	cmd.Env = append(slices.Clone(g.Env), extra...)
	return cmd
}

// Procs returns every program started so far, in order, exited or not.
func (g *Group) Procs() []*Proc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.procs)
}

// Exited returns the ExitError of the first program that has exited, nil
// while all run: in a deployment that should keep running, an exit is a
// failure.
func (g *Group) Exited() error {
	for _, p := range g.Procs() {
		if p.Exited() {
			return p.ExitError()
		}
	}
	return nil
}

// StopAll sends SIGTERM to every running program at once (workers hand
// their tasks back in parallel), then waits for each; whatever still runs
// after the grace period is killed, and the error names it.
func (g *Group) StopAll() error {
	procs := g.Procs()
	for _, p := range procs {
		if !p.Exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(g.stopTimeout())
	var errs []error
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			errs = append(errs, p.kill(fmt.Errorf("%s (pid %d) did not stop within %s of SIGTERM: killed", p.Name, p.Pid(), g.stopTimeout())))
		}
	}
	return errors.Join(errs...)
}

// Cleaner is the part of testing.TB that StopOnCleanup needs.
type Cleaner interface {
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
}

// StopOnCleanup stops the group when the test ends and, if it failed,
// logs the end of each program's log: why a program misbehaved is there.
func (g *Group) StopOnCleanup(t Cleaner) {
	t.Cleanup(func() {
		if err := g.StopAll(); err != nil {
			t.Logf("stop: %v", err)
		}
		if !t.Failed() {
			return
		}
		seen := map[string]bool{}
		for _, p := range g.Procs() {
			if !seen[p.Log] {
				seen[p.Log] = true
				t.Logf("---- %s log (tail) ----\n%s", p.Name, tailOf(p.Log, 3000))
			}
		}
	})
}

func (g *Group) stopTimeout() time.Duration {
	if g.StopTimeout > 0 {
		return g.StopTimeout
	}
	return DefaultStopTimeout
}

func (g *Group) client() *http.Client {
	if g.Client != nil {
		return g.Client
	}
	return &http.Client{Timeout: 5 * time.Second}
}

// tailOf is the last n bytes of a file, "" when it cannot be read.
func tailOf(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
