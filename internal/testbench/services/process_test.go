package services

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPickPortHandsOutEachPortOnce(t *testing.T) {
	t.Parallel()
	b := &Bench{dir: t.TempDir(), state: map[string]string{}, ports: map[int]bool{}}
	seen := map[int]bool{}
	for i := range 20 {
		p, err := b.pickPort(fmt.Sprintf("P%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if p < 20000 || p > 60999 || seen[p] {
			t.Fatalf("pickPort = %d (seen before: %v), want a new port in 20000-60999", p, seen[p])
		}
		seen[p] = true
	}
	state, err := readAssignments(filepath.Join(b.dir, "state"))
	if err != nil || len(state) != 20 {
		t.Errorf("state file holds %d entries (%v), want 20", len(state), err)
	}
}

func TestOwned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	other := t.TempDir()
	cmd := exec.Command("sleep", "60")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	if !owned(pid, dir) {
		t.Errorf("owned(sleep, its working directory) = false")
	}
	if owned(pid, other) {
		t.Errorf("owned(sleep, another directory) = true: a stranger could be killed")
	}
	if !owned(os.Getpid(), os.Args[0]) {
		t.Errorf("owned(self, a word of its command line) = false")
	}
	b := &Bench{}
	if err := b.terminate(context.Background(), pid, "sleep"); err != nil {
		t.Fatal(err)
	}
	if owned(pid, dir) {
		t.Error("owned after terminate = true")
	}
}

func TestWithLogs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "server.log")
	var lines []string
	for i := 1; i <= 50; i++ {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	if err := os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := errors.New("it failed")
	err := withLogs(base, log, filepath.Join(dir, "missing.log"))
	if !errors.Is(err, base) {
		t.Errorf("withLogs lost the error it wraps: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "line 50") || !strings.Contains(msg, "line 21") || strings.Contains(msg, "line 20\n") {
		t.Errorf("withLogs = %q, want the last 30 lines (21 to 50)", msg)
	}
	if strings.Contains(msg, "missing.log") {
		t.Errorf("withLogs mentions a log that does not exist: %q", msg)
	}
	if got := withLogs(base, filepath.Join(dir, "missing.log")); got != base {
		t.Errorf("withLogs without logs = %v, want the error unchanged", got)
	}
}

func TestPollStopsAtDeadlineAndContext(t *testing.T) {
	t.Parallel()
	if err := poll(context.Background(), 50*time.Millisecond, 10*time.Millisecond, func() bool { return false }); !errors.Is(err, errTimeout) {
		t.Errorf("poll of a condition that never holds = %v, want errTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := poll(ctx, time.Minute, 10*time.Millisecond, func() bool { return false }); !errors.Is(err, context.Canceled) {
		t.Errorf("poll with a cancelled context = %v, want context.Canceled", err)
	}
	n := 0
	if err := poll(context.Background(), time.Minute, time.Millisecond, func() bool { n++; return n == 3 }); err != nil || n != 3 {
		t.Errorf("poll = %v after %d calls, want nil after 3", err, n)
	}
}

func TestOnFreePortsRetriesOnlyWhenAPortIsTaken(t *testing.T) {
	t.Parallel()
	other := errors.New("broken config")
	tests := []struct {
		name      string
		failures  []error // what start returns, call by call; then nil
		wantCalls int
		wantErr   error
	}{
		{"first try", nil, 1, nil},
		{"two ports taken", []error{errPortTaken, fmt.Errorf("wrapped: %w", errPortTaken)}, 3, nil},
		{"other error", []error{other}, 1, other},
		{"gives up", []error{errPortTaken, errPortTaken, errPortTaken, errPortTaken, errPortTaken, errPortTaken}, 5, errPortTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &Bench{dir: t.TempDir(), state: map[string]string{}, ports: map[int]bool{}}
			calls, undos := 0, 0
			var ports []string
			start := func(context.Context) error {
				calls++
				ports = append(ports, b.get("A")+"/"+b.get("B"))
				if calls <= len(tt.failures) {
					return tt.failures[calls-1]
				}
				return nil
			}
			undo := func(context.Context) error { undos++; return nil }
			err := b.onFreePorts(context.Background(), Redis, []string{"A", "B"}, start, undo)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("onFreePorts = %v, want %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Errorf("start called %d times, want %d", calls, tt.wantCalls)
			}
			if wantUndos := min(calls, len(tt.failures)); tt.wantErr == nil && undos != wantUndos {
				t.Errorf("undo called %d times, want %d", undos, wantUndos)
			}
			for i := 1; i < len(ports); i++ {
				if ports[i] == ports[i-1] {
					t.Errorf("attempt %d reused ports %s", i+1, ports[i])
				}
			}
		})
	}
}

// TestRedisSeesItsPortTaken checks that a Redis start on a port another
// program holds fails as errPortTaken (which makes the bench try another
// port), and fast.
func TestRedisSeesItsPortTaken(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("PGBACKUP_TEST_REQUIRED") != "" {
			t.Fatal("redis-server is not installed")
		}
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	b := &Bench{dir: t.TempDir(), state: map[string]string{}, ports: map[int]bool{}}
	if err := b.set(keyRedisPort, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)); err != nil {
		t.Fatal(err)
	}
	r := &redisServer{b: b}
	t.Cleanup(func() { _ = r.stop(context.Background()) })
	began := time.Now()
	err = r.start(context.Background())
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a taken port = %v, want errPortTaken", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("start took %v to notice; it should fail fast", took)
	}
	if !strings.Contains(err.Error(), "redis.log") {
		t.Errorf("error %q does not show the end of redis.log", err)
	}
}
