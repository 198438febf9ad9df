package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeGroup is a Group whose "worker" is a shell script: it logs its
// setting, says it started, and exits 0 on SIGTERM unless told to linger.
func fakeGroup(t *testing.T) *Group {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
echo "greeting=$GREETING"
if [ -n "$LINGER" ]; then trap '' TERM; else trap 'echo bye; exit 0' TERM; fi
echo "worker started"
while :; do sleep 0.05; done
`
	if err := os.WriteFile(filepath.Join(dir, Worker), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	g := &Group{Bin: dir, Logs: dir, Env: []string{"PATH=" + os.Getenv("PATH"), "GREETING=base"}, StopTimeout: 2 * time.Second}
	g.StopOnCleanup(t)
	return g
}

func TestStartWaitStopRestart(t *testing.T) {
	g := fakeGroup(t)
	ctx := context.Background()
	p, err := g.Start("w", Worker, "GREETING=override")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLog(ctx, "worker started", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(syscall.SIGTERM, 0); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || p.Err() != nil {
		t.Fatalf("exited %v, err %v; want a clean exit", p.Exited(), p.Err())
	}
	q, err := p.Restart()
	if err != nil {
		t.Fatal(err)
	}
	// The new run's start line, not the first run's, ends the wait.
	if err := q.WaitLog(ctx, "worker started", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := q.Kill(); err != nil {
		t.Fatal(err)
	}
	out, _ := q.Output()
	if strings.Count(out, "worker started") != 2 || !strings.Contains(out, "greeting=override") {
		t.Fatalf("log = %q; want two runs with the override", out)
	}
	if err := g.Exited(); err == nil || !strings.Contains(err.Error(), "w (pid") {
		t.Fatalf("Exited() = %v; want the killed worker named", err)
	}
}

func TestStopKillsWhatLingers(t *testing.T) {
	g := fakeGroup(t)
	g.StopTimeout = 300 * time.Millisecond
	p, err := g.Start("stubborn", Worker, "LINGER=1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLog(context.Background(), "worker started", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := g.StopAll(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("StopAll() = %v; want it to say it killed the program", err)
	}
	if !p.Exited() {
		t.Fatal("still running after StopAll")
	}
}

func TestWaitFailsWhenTheProgramExits(t *testing.T) {
	g := fakeGroup(t)
	p, err := g.Start("gone", Worker)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Kill()
	err = p.WaitLog(context.Background(), "never logged", 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("WaitLog = %v; want the exit reported", err)
	}
}

func TestWithout(t *testing.T) {
	got := Without([]string{"A=1", "B=2", "C=3=x"}, Names("B"))
	if strings.Join(got, " ") != "A=1 C=3=x" {
		t.Fatalf("Without = %v", got)
	}
}
