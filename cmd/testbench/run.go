package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/autograph/pgbackup/internal/testbench/procfs"
	"github.com/autograph/pgbackup/internal/testbench/services"
)

// runWithBench starts a bench in a fresh temporary directory, runs argv
// with the bench's PGBACKUP_TEST_* variables, stops the bench and returns
// argv's status as an exitCode (KEEP_TESTBENCH=1 keeps the directory).
func runWithBench(ctx context.Context, opts services.Options, argv []string, sigs <-chan os.Signal) (err error) {
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return fmt.Errorf("%w: run needs a command", errUsage)
	}
	dir, err := os.MkdirTemp("", "pgbackup-testbench.")
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer func() {
		// Whatever happened, and with a context of its own: the bench must go.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		b, oerr := services.Open(dir, opts)
		if oerr != nil {
			_ = os.Remove(dir) // empty: the start failed before anything
			return
		}
		if serr := b.Stop(stopCtx); serr != nil {
			// The command's status stands; say what was left behind.
			fmt.Fprintf(opts.Log, "testbench: stopping the bench in %s failed: %v\n", dir, serr)
		}
	}()

	// A signal during the start ends the start (and the run).
	startCtx, cancel := context.WithCancel(ctx)
	startDone := make(chan struct{})
	caught := make(chan os.Signal, 1)
	go func() {
		defer close(caught)
		select {
		case s := <-sigs:
			fmt.Fprintf(opts.Log, "testbench: got %v, stopping\n", s)
			caught <- s
			cancel()
		case <-startDone:
		}
	}()
	b, err := services.Start(startCtx, dir, opts)
	close(startDone)
	interrupted := <-caught
	cancel()
	if interrupted != nil {
		return exitCode(128 + int(interrupted.(syscall.Signal)))
	}
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	env, err := b.Env()
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	code, sig, err := runChild(argv, append(os.Environ(), env.Environ()...), sigs, opts.Log)
	switch {
	case err != nil:
		return fmt.Errorf("run: %w", err)
	case sig != nil:
		return exitCode(128 + int(sig.(syscall.Signal)))
	case code != 0:
		return exitCode(code)
	}
	return nil
}

// runChild runs argv with environ and this process's standard input and
// output, and returns its exit status (128+N when signal N killed it).
// Each signal from sigs goes to argv's whole process tree (go test's
// test binaries run below the go command); the first one received is
// returned as sig.
func runChild(argv, environ []string, sigs <-chan os.Signal, log io.Writer) (code int, sig os.Signal, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = environ
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	for {
		select {
		case s := <-sigs:
			if sig == nil {
				fmt.Fprintf(log, "testbench: got %v, stopping %s\n", s, argv[0])
				sig = s
			}
			select {
			case <-done:
				// Already gone and reaped: its pid may belong to a stranger now.
			default:
				signalTree(cmd.Process, s)
			}
		case <-done:
			var exit *exec.ExitError
			if waitErr != nil && !errors.As(waitErr, &exit) {
				return 0, sig, fmt.Errorf("wait for %s: %w", argv[0], waitErr)
			}
			return exitStatus(cmd.ProcessState), sig, nil
		}
	}
}

// exitStatus is the shell's view of how a process ended.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// signalTree signals p's descendants, each before its parent, then p.
func signalTree(p *os.Process, sig os.Signal) {
	for _, pid := range procfs.Descendants(p.Pid) {
		_ = syscall.Kill(pid, sig.(syscall.Signal))
	}
	_ = p.Signal(sig)
}
