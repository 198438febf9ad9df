package services

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
