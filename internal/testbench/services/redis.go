package services

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// redisServer is the bench's Redis, its files in DIR/redis. It runs
// without snapshots, and without an append-only file unless
// Options.RedisPersist; it never evicts keys (asynq needs every key).
type redisServer struct{ b *Bench }

func (r *redisServer) dir() string             { return filepath.Join(r.b.dir, "redis") }
func (r *redisServer) file(name string) string { return filepath.Join(r.dir(), name) }
func (r *redisServer) port() string            { return r.b.get(keyRedisPort) }
func (r *redisServer) version() string         { return "" }
func (r *redisServer) logs() []string          { return []string{r.file("stderr.log"), r.file("redis.log")} }

func (r *redisServer) create(ctx context.Context) error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return fmt.Errorf("%w: redis-server (run: testbench install)", ErrMissing)
	}
	if r.b.opts.RedisPersist {
		if err := r.b.set(keyRedisAppendOnly, "yes"); err != nil {
			return err
		}
	}
	return r.b.onFreePorts(ctx, Redis, []string{keyRedisPort}, r.start, r.stop)
}

// start launches redis-server, which daemonizes itself, and waits up to
// 10 s for it to answer PING.
func (r *redisServer) start(ctx context.Context) error {
	if err := os.MkdirAll(r.dir(), 0o755); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	// Only what this attempt logs counts: the logs keep earlier runs.
	logStart := fileSize(r.file("redis.log"))
	stderr, err := appendLog(r.file("stderr.log"))
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	defer stderr.Close()
	// Not running (callers check): a pid file left behind is stale and
	// would pass for the new server having died.
	if err := os.Remove(r.file("redis.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("start redis-server: %w", err)
	}
	appendOnly := r.b.get(keyRedisAppendOnly)
	if appendOnly == "" {
		appendOnly = "no"
	}
	cmd := exec.CommandContext(ctx, "redis-server", "--port", r.port(), "--bind", loopback,
		"--save", "", "--appendonly", appendOnly, "--dir", r.dir(),
		"--daemonize", "yes", "--pidfile", r.file("redis.pid"), "--logfile", r.file("redis.log"),
		"--maxmemory-policy", "noeviction",
		// Tests isolate themselves by database number: the e2e clusters
		// take 16 and up, package tests 0 to 15.
		"--databases", "128")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return withLogs(fmt.Errorf("redis-server: %w", err), r.logs()...)
	}
	var failed error
	err = poll(ctx, 10*time.Second, 100*time.Millisecond, func() bool {
		// Fail fast when it already gave up, before a PING that the
		// program holding the port may never answer.
		if logMatches(r.file("redis.log"), logStart, portTaken) {
			failed = errPortTaken
			return true
		}
		if pid := pidFromFile(r.file("redis.pid")); pid != 0 && !owned(pid, r.dir()) {
			failed = errExited
			return true
		}
		return redisPing(net.JoinHostPort(loopback, r.port()))
	})
	if err == nil {
		err = failed
	}
	if err != nil {
		return withLogs(fmt.Errorf("wait for Redis: %w", err), r.logs()...)
	}
	return nil
}

// redisPing reports whether a Redis server answers PING at addr. A
// foreign program on the port may never answer: every step has a deadline.
func redisPing(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

func (r *redisServer) pid() int { return runningPid(r.file("redis.pid"), r.dir()) }

func (r *redisServer) stop(ctx context.Context) error {
	return r.b.stopPidFile(ctx, r.file("redis.pid"), r.dir(), "redis-server")
}
