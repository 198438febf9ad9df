package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/autograph/pgbackup/internal/testbench/procfs"
)

// owned reports whether pid is a live process of the bench: its working
// directory is under dir or its command line mentions dir. Pids get reused;
// this keeps a stale pid file from getting a stranger killed.
func owned(pid int, dir string) bool {
	if !procfs.Alive(pid) {
		return false
	}
	if _, err := os.Stat("/proc"); err != nil {
		return true // no way to tell: trust the pid file
	}
	if cwd, err := procfs.Cwd(pid); err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
		return true
	}
	cmdline, err := procfs.Cmdline(pid)
	return err == nil && bytes.Contains(cmdline, []byte(dir))
}

// pidFromFile reads the pid on the first line of a pid file; 0 when the
// file is missing or holds no pid.
func pidFromFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// runningPid is the pid in pidFile when that process runs and belongs to
// the bench's directory dir; 0 otherwise.
func runningPid(pidFile, dir string) int {
	pid := pidFromFile(pidFile)
	if pid == 0 || !owned(pid, dir) {
		return 0
	}
	return pid
}

// stopPidFile stops the process of pidFile, if it runs and belongs to
// dir, and removes the file.
func (b *Bench) stopPidFile(ctx context.Context, pidFile, dir, name string) error {
	if pid := runningPid(pidFile, dir); pid != 0 {
		if err := b.terminate(ctx, pid, name); err != nil {
			return err
		}
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// terminate sends SIGTERM to pid and waits until it is gone: 10 s, then
// SIGKILL and 5 s more.
func (b *Bench) terminate(ctx context.Context, pid int, name string) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("signal %s (pid %d): %w", name, pid, err)
	}
	if waitGone(ctx, pid, 10*time.Second) {
		return nil
	}
	b.logf("%s (pid %d) did not exit after 10 s: SIGKILL", name, pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(ctx, pid, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("%s (pid %d) still alive after SIGKILL", name, pid)
}

// waitGone polls until pid has exited or timeout has passed; it reports
// whether pid is gone.
func waitGone(ctx context.Context, pid int, timeout time.Duration) bool {
	return poll(ctx, timeout, 100*time.Millisecond, func() bool { return !procfs.Alive(pid) }) == nil
}

// errTimeout is poll's error when the condition never held.
var errTimeout = errors.New("timed out")

// poll calls done every interval until it returns true (nil), timeout has
// passed (errTimeout) or ctx ends (its error).
func poll(ctx context.Context, timeout, interval time.Duration, done func() bool) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if done() {
			return nil
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// withLogs appends the last lines of each log that exists to err: why a
// server failed is in its log, not in its exit status.
func withLogs(err error, logs ...string) error {
	var b strings.Builder
	for _, path := range logs {
		if tail := LastLines(path, 30); tail != "" {
			fmt.Fprintf(&b, "\n---- last lines of %s ----\n%s", path, tail)
		}
	}
	if b.Len() == 0 {
		return err
	}
	return fmt.Errorf("%w%s", err, b.String())
}

// LastLines returns the last n lines of a file (at most of its last 64
// KiB), "" when it cannot be read: the end of a log says why a program
// failed.
func LastLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 64<<10 {
		_, _ = f.Seek(-64<<10, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// logMatches reports whether what a log gained after offset matches re:
// a retry must not be misled by the previous attempt's lines.
func logMatches(path string, offset int64, re *regexp.Regexp) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return re.Match(b)
}

// fileSize is the size of path, 0 when it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Why a server did not become ready.
var (
	// errPortTaken: another program holds its port; worth another port.
	errPortTaken = errors.New("port taken")
	errExited    = errors.New("exited before it was ready")
)

// portTaken matches the servers' messages for a port someone else holds.
var portTaken = regexp.MustCompile(`(?i)could not (bind|create listen)|already in use`)

// appendLog opens a log file for a child's output.
func appendLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// isRoot reports whether this process runs as root, when PostgreSQL must
// run as the postgres user.
func isRoot() bool { return os.Geteuid() == 0 }

// asPostgres prepares a PostgreSQL server program. initdb and postgres
// refuse to run as root: as root, they run as the postgres user through
// runuser, from / (the caller's working directory may be closed to it).
func asPostgres(ctx context.Context, name string, args ...string) *exec.Cmd {
	if !isRoot() {
		return exec.CommandContext(ctx, name, args...)
	}
	cmd := exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	cmd.Dir = "/"
	return cmd
}

// postgresUser returns the uid and gid of the postgres user.
func postgresUser() (uid, gid int, err error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("running as root but there is no postgres user to run PostgreSQL as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("postgres user: %w", err)
	}
	return uid, gid, nil
}
