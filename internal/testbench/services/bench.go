package services

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Keys of DIR/state, the bench's record of its ports, passwords and paths.
// It is written line by line as the start goes on, so that a start that
// fails half way can still be stopped. The names are those the shell
// script that came before wrote, so that its benches can still be opened.
const (
	keyPGBin            = "PG_BIN"
	keyPGDir            = "PG_DIR"
	keyPGRelocated      = "PG_RELOCATED"
	keyPGPort           = "PG_PORT"
	keyPGPassword       = "PG_PASSWORD"
	keyRedisPort        = "REDIS_PORT"
	keyRedisAppendOnly  = "REDIS_APPENDONLY"
	keyMinIOBin         = "MINIO_BIN"
	keyMinIOPort        = "MINIO_PORT"
	keyMinIOConsolePort = "MINIO_CONSOLE_PORT"
	keyMinIOPassword    = "MINIO_PASSWORD"
)

// Bench is a test bench directory and its servers.
type Bench struct {
	dir  string
	opts Options

	// mu guards state, the state file and ports: the servers start at
	// the same time.
	mu    sync.Mutex
	state map[string]string
	ports map[int]bool
}

// Start creates a bench in dir (created if missing; it must be empty),
// starts PostgreSQL, Redis and MinIO and waits until each answers, then
// writes DIR/env. On failure it stops what it started and keeps dir for
// its logs; the error holds the tail of the failed server's log.
func Start(ctx context.Context, dir string, opts Options) (_ *Bench, err error) {
	began := time.Now()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start test bench: %w", err)
	}
	if dir, err = absDir(dir); err != nil {
		return nil, fmt.Errorf("start test bench: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
		return nil, fmt.Errorf("start test bench in %s: %w; stop it first", dir, ErrExists)
	}
	if entries, err := os.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("start test bench: %w", err)
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("start test bench in %s: %w: the directory is not empty", dir, ErrNotBench)
	}
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{{marker, 0o644}, {"state", 0o600}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), nil, f.perm); err != nil {
			return nil, fmt.Errorf("start test bench: %w", err)
		}
	}
	// As root, the postgres user must be able to enter dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start test bench: %w", err)
	}
	b := &Bench{dir: dir, opts: opts, state: map[string]string{}, ports: map[int]bool{}}
	defer func() {
		if err == nil {
			return
		}
		b.logf("start failed; stopping what was started")
		// The start's context may be what ended it: stop regardless.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if serr := b.stopAll(stopCtx); serr != nil {
			err = errors.Join(err, serr)
		}
		b.logf("logs kept in %s; remove them with: testbench stop %s", dir, dir)
	}()

	g, gctx := errgroup.WithContext(ctx)
	for _, s := range opts.services() {
		srv, err := b.server(s)
		if err != nil {
			return nil, err
		}
		g.Go(func() error {
			if err := srv.create(gctx); err != nil {
				return fmt.Errorf("start %v: %w", s, err)
			}
			b.logf("%s on %s:%s", strings.TrimSpace(s.String()+" "+srv.version()), loopback, srv.port())
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("start test bench in %s: %w", dir, err)
	}
	if err := WriteEnvFile(filepath.Join(dir, "env"), b.env()); err != nil {
		return nil, fmt.Errorf("start test bench: %w", err)
	}
	b.logf("bench up in %.0f s; source %s", time.Since(began).Seconds(), filepath.Join(dir, "env"))
	return b, nil
}

// Open finds the bench in dir again, as Start (in this or another
// process) left it. The error wraps fs.ErrNotExist when dir does not exist
// and ErrNotBench when it holds no bench.
func Open(dir string, opts Options) (*Bench, error) {
	abs, err := absDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open test bench: %w", err)
	}
	if _, err := os.Stat(filepath.Join(abs, marker)); err != nil {
		return nil, fmt.Errorf("open test bench %s: %w (no %s)", abs, ErrNotBench, marker)
	}
	b := &Bench{dir: abs, opts: opts, ports: map[int]bool{}}
	if b.state, err = readAssignments(filepath.Join(abs, "state")); errors.Is(err, os.ErrNotExist) {
		b.state = map[string]string{}
	} else if err != nil {
		return nil, fmt.Errorf("open test bench: %w", err)
	}
	// A bench whose start failed early may have DIR/pg but no PG_DIR yet.
	if b.state[keyPGDir] == "" {
		if d, err := absDir(filepath.Join(abs, "pg")); err == nil {
			b.state[keyPGDir] = d
		}
	}
	return b, nil
}

// Up starts a bench in dir, or, when dir already holds a started bench
// (after a reboot, say), starts those of its servers that are down.
func Up(ctx context.Context, dir string, opts Options) (*Bench, error) {
	b, err := Open(dir, opts)
	if err != nil || !b.started() {
		return Start(ctx, dir, opts)
	}
	b.logf("reusing the test bench in %s", b.dir)
	for _, s := range Services() {
		if err := b.StartService(ctx, s); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Dir is the bench's directory, absolute and without symbolic links.
func (b *Bench) Dir() string { return b.dir }

// Env reads how to reach the bench from DIR/env.
func (b *Bench) Env() (Env, error) {
	e, err := ReadEnvFile(filepath.Join(b.dir, "env"))
	if errors.Is(err, os.ErrNotExist) {
		return Env{}, fmt.Errorf("test bench %s: %w (no env file)", b.dir, ErrNotStarted)
	}
	if err != nil {
		return Env{}, fmt.Errorf("test bench %s: %w", b.dir, err)
	}
	return e, nil
}

func (b *Bench) started() bool {
	_, err := os.Stat(filepath.Join(b.dir, "env"))
	return err == nil
}

// env is what DIR/env says, built from the state.
func (b *Bench) env() Env {
	sock := filepath.Join(b.dir, "pg", "sock")
	if d := b.get(keyPGRelocated); d != "" {
		// The real path: the link through DIR/pg may be too long for a socket.
		sock = filepath.Join(d, "sock")
	}
	e := Env{
		Dir: b.dir, PGHost: loopback, PGPort: b.get(keyPGPort),
		PGUser: pgUser, PGPassword: b.get(keyPGPassword), PGDatabase: pgDB,
		PGSocket: sock, PGBin: b.get(keyPGBin),
		Tool: b.opts.Tool,
	}
	// A PostgreSQL-only bench (Options.PostgresOnly) names no other server.
	if p := b.get(keyRedisPort); p != "" {
		e.RedisAddr = net.JoinHostPort(loopback, p)
	}
	if p := b.get(keyMinIOPort); p != "" {
		e.MinIOEndpoint = "http://" + net.JoinHostPort(loopback, p)
		e.MinIOUser, e.MinIOPassword = minioUser, b.get(keyMinIOPassword)
	}
	return e
}

// Stop stops every server of the bench, then removes its directory (and
// PostgreSQL's relocated files) unless Options.Keep is set.
func (b *Bench) Stop(ctx context.Context) error {
	if err := b.stopAll(ctx); err != nil {
		return fmt.Errorf("stop test bench %s: %w", b.dir, err)
	}
	if b.opts.Keep {
		b.logf("stopped; kept %s", b.dir)
		return nil
	}
	if d := b.get(keyPGRelocated); isRelocatedDir(d) {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("stop test bench: %w", err)
		}
	}
	if err := os.RemoveAll(b.dir); err != nil {
		return fmt.Errorf("stop test bench: %w", err)
	}
	b.logf("stopped and removed %s", b.dir)
	return nil
}

// stopAll stops the servers at the same time: MinIO and Redis each take a
// second or two to exit.
func (b *Bench) stopAll(ctx context.Context) error {
	var g errgroup.Group
	for _, s := range Services() {
		srv, err := b.server(s)
		if err != nil {
			return err
		}
		g.Go(func() error {
			if err := srv.stop(ctx); err != nil {
				return fmt.Errorf("stop %v: %w", s, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// StopService stops one server, so that a test can watch the outage.
func (b *Bench) StopService(ctx context.Context, s Service) error {
	srv, err := b.startedServer(s)
	if err != nil {
		return fmt.Errorf("stop %v: %w", s, err)
	}
	if err := srv.stop(ctx); err != nil {
		return fmt.Errorf("stop %v: %w", s, err)
	}
	b.logf("%v stopped", s)
	return nil
}

// StartService starts a server again on its port with its data and waits
// until it answers; it does nothing when the server already runs.
func (b *Bench) StartService(ctx context.Context, s Service) error {
	srv, err := b.startedServer(s)
	if err != nil {
		return fmt.Errorf("start %v: %w", s, err)
	}
	if srv.pid() != 0 {
		b.logf("%v already running", s)
		return nil
	}
	if err := srv.start(ctx); err != nil {
		return fmt.Errorf("start %v on port %s: %w", s, srv.port(), err)
	}
	b.logf("%v started", s)
	return nil
}

func (b *Bench) startedServer(s Service) (server, error) {
	if !b.started() {
		return nil, fmt.Errorf("test bench %s: %w", b.dir, ErrNotStarted)
	}
	return b.server(s)
}

// Pid is the pid of the running server s, or 0 when it does not run.
func (b *Bench) Pid(s Service) int {
	srv, err := b.server(s)
	if err != nil {
		return 0
	}
	return srv.pid()
}

func (b *Bench) logf(format string, args ...any) {
	if b.opts.Log != nil {
		fmt.Fprintf(b.opts.Log, "testbench: "+format+"\n", args...)
	}
}

func (b *Bench) get(key string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state[key]
}

// set records key in the state and appends it to the state file.
func (b *Bench) set(key, value string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.setLocked(key, value)
}

func (b *Bench) setLocked(key, value string) error {
	f, err := os.OpenFile(filepath.Join(b.dir, "state"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record %s: %w", key, err)
	}
	_, err = fmt.Fprintf(f, "%s=%s\n", key, ShellQuote(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record %s: %w", key, err)
	}
	b.state[key] = value
	return nil
}

// pickPort records under key a random port in 20000-60999 that nothing on
// loopback listens on and that this bench did not hand out yet. Another
// program may still take it before the server binds it: the servers retry
// on other ports when they find theirs taken.
func (b *Bench) pickPort(key string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range 200 {
		p := 20000 + rand.IntN(41000)
		if b.ports[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		b.ports[p] = true
		return p, b.setLocked(key, strconv.Itoa(p))
	}
	return 0, errors.New("no free port found in 20000-60999")
}

// onFreePorts picks a port for each of keys and runs start, again on new
// ports while start fails because one was taken (another program may bind
// a port between its pick and the server's start); undo, if not nil,
// cleans up after such a failure. It gives up after five attempts.
func (b *Bench) onFreePorts(ctx context.Context, s Service, keys []string, start, undo func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		var ports []string
		for _, key := range keys {
			p, err := b.pickPort(key)
			if err != nil {
				return err
			}
			ports = append(ports, strconv.Itoa(p))
		}
		err := start(ctx)
		if err == nil || attempt == 5 || ctx.Err() != nil || !errors.Is(err, errPortTaken) {
			return err
		}
		b.logf("%v: port %s taken, retrying on another port", s, strings.Join(ports, " or "))
		if undo != nil {
			if err := undo(ctx); err != nil {
				return err
			}
		}
	}
}

// randomHex returns n random bytes in hex: passwords the shell never has
// to quote.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b)
}

// absDir returns the absolute path of an existing directory without
// symbolic links: processes are recognised by it.
func absDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(abs); err != nil {
		return "", err
	} else if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", abs)
	}
	return abs, nil
}

// discardIfNil lets a nil Log mean "no output" for child processes too.
func discardIfNil(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
