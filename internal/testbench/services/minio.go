package services

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// minioServer is the bench's MinIO, its files in DIR/minio: the data
// directory, minio.log and minio.pid. It runs from DIR/minio so that its
// working directory identifies it.
type minioServer struct{ b *Bench }

func (m *minioServer) dir() string             { return filepath.Join(m.b.dir, minioProgram) }
func (m *minioServer) file(name string) string { return filepath.Join(m.dir(), name) }
func (m *minioServer) logPath() string         { return m.file(minioProgram + ".log") }
func (m *minioServer) pidPath() string         { return m.file(minioProgram + ".pid") }
func (m *minioServer) port() string            { return m.b.get(keyMinIOPort) }
func (m *minioServer) version() string         { return "" }

// create launches MinIO and waits until it is healthy.
func (m *minioServer) create(ctx context.Context) error {
	if err := m.b.set(keyMinIOBin, m.b.opts.minioBin()); err != nil {
		return err
	}
	if err := m.b.set(keyMinIOPassword, randomHex(20)); err != nil {
		return err
	}
	return m.b.onFreePorts(ctx, MinIO, []string{keyMinIOPort, keyMinIOConsolePort}, m.start, m.stop)
}

// start launches the server in a session of its own (a terminal's Ctrl-C
// must not reach it: the bench outlives the command that started it) and
// waits up to a minute for /minio/health/live.
func (m *minioServer) start(ctx context.Context) error {
	bin := m.b.get(keyMinIOBin)
	if bin == "" {
		bin = m.b.opts.minioBin()
	}
	if !isExecutable(bin) {
		return fmt.Errorf("%w: the MinIO binary %s (run: testbench install)", ErrMissing, bin)
	}
	if err := os.MkdirAll(m.file("data"), 0o755); err != nil {
		return fmt.Errorf("start MinIO: %w", err)
	}
	logStart := fileSize(m.logPath())
	log, err := appendLog(m.logPath())
	if err != nil {
		return fmt.Errorf("start MinIO: %w", err)
	}
	defer log.Close()
	// Not CommandContext: the server must outlive ctx.
	cmd := exec.Command(bin, "server", m.file("data"),
		"--address", net.JoinHostPort(loopback, m.port()),
		"--console-address", net.JoinHostPort(loopback, m.b.get(keyMinIOConsolePort)))
	cmd.Dir = m.dir()
	cmd.Env = append(withoutPrefix(os.Environ(), "MINIO_"),
		"MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+m.b.get(keyMinIOPassword),
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start MinIO: %w", err)
	}
	pid := cmd.Process.Pid
	// Reap it when it exits while this process still runs (a test's
	// private bench), so that it does not linger as a zombie.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(m.pidPath(), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("start MinIO: %w", err)
	}
	health := "http://" + net.JoinHostPort(loopback, m.port()) + "/minio/health/live"
	client := &http.Client{Timeout: 3 * time.Second}
	exited := false
	err = poll(ctx, time.Minute, 200*time.Millisecond, func() bool {
		if resp, err := client.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		exited = !owned(pid, m.dir())
		return exited
	})
	if err == nil && exited {
		err = errExited
		if logMatches(m.logPath(), logStart, portTaken) {
			err = errPortTaken
		}
	}
	if err != nil {
		return withLogs(fmt.Errorf("wait for MinIO health at %s: %w", health, err), m.logPath())
	}
	return nil
}

func (m *minioServer) pid() int { return runningPid(m.pidPath(), m.dir()) }

func (m *minioServer) stop(ctx context.Context) error {
	return m.b.stopPidFile(ctx, m.pidPath(), m.dir(), "MinIO")
}

// withoutPrefix returns environ minus the variables whose name starts with
// prefix: an inherited MINIO_VOLUMES, say, would change what the server
// serves.
func withoutPrefix(environ []string, prefix string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}
