package main

import (
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/testbench/procfs"
	"github.com/autograph/pgbackup/internal/testbench/services"
)

func TestRunChildStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
		want int
	}{
		{"success", []string{"true"}, 0},
		{"exit status", []string{"sh", "-c", "exit 3"}, 3},
		{"environment", []string{"sh", "-c", `test "$PGBACKUP_TEST_X" = y`}, 0},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, sig, err := runChild(tt.argv, append(os.Environ(), "PGBACKUP_TEST_X=y"), nil, io.Discard)
			if err != nil || sig != nil || code != tt.want {
				t.Errorf("runChild(%q) = %d, %v, %v; want %d", tt.argv, code, sig, err, tt.want)
			}
		})
	}
	if _, _, err := runChild([]string{"/nonexistent/cmd"}, nil, nil, io.Discard); err == nil {
		t.Error("runChild of a missing program succeeded")
	}
}

// TestRunChildForwardsSignals checks that a signal reaches the command's
// grandchildren too, as go test's test binaries are.
func TestRunChildForwardsSignals(t *testing.T) {
	// Not parallel: it looks for its own sleep processes among this
	// process's descendants.
	sigs := make(chan os.Signal, 1)
	type result struct {
		code int
		sig  os.Signal
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, sig, err := runChild([]string{"sh", "-c", "sleep 60 & sleep 61 & wait"}, os.Environ(), sigs, io.Discard)
		done <- result{code, sig, err}
	}()
	var sleeps []int
	for deadline := time.Now().Add(10 * time.Second); len(sleeps) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the command's two sleeps did not start: %v", sleeps)
		}
		sleeps = sleeps[:0]
		for _, p := range procfs.Descendants(os.Getpid()) {
			if st, err := procfs.ReadStat(p); err == nil && st.Comm == "sleep" {
				sleeps = append(sleeps, p)
			}
		}
	}
	sigs <- syscall.SIGTERM
	select {
	case r := <-done:
		if r.err != nil || r.sig != syscall.SIGTERM {
			t.Errorf("runChild = %d, %v, %v; want SIGTERM reported", r.code, r.sig, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runChild did not return within 10 s of SIGTERM")
	}
	for _, p := range sleeps {
		for deadline := time.Now().Add(5 * time.Second); procfs.Alive(p); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("grandchild sleep %d still alive after SIGTERM", p)
				break
			}
		}
	}
}

func TestParseService(t *testing.T) {
	t.Parallel()
	for name, want := range serviceNames {
		if got, err := parseService(name); err != nil || got != want {
			t.Errorf("parseService(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := parseService("mysql"); err == nil {
		t.Error("parseService(mysql) succeeded")
	}
	named := map[services.Service]bool{}
	for _, s := range serviceNames {
		named[s] = true
	}
	for _, s := range services.Services() {
		if !named[s] {
			t.Errorf("%v has no name on the command line", s)
		}
	}
}
