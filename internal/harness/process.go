package harness

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/autograph/pgbackup/internal/testbench/services"
)

// Proc is one started program of a Group.
type Proc struct {
	// Name names it in logs and errors; its log is Name.log.
	Name string
	// Program is the binary it runs (API, Worker, ...).
	Program string
	// Log is the path of its log file, shared by its restarts.
	Log string

	g     *Group
	extra []string
	cmd   *exec.Cmd
	// logStart is the log's size when this run started: WaitLog reads
	// only this run's lines, not an earlier run's.
	logStart int64
	done     chan struct{} // closed once it has exited
	err      error         // how it exited, once done is closed
}

func (p *Proc) start() error {
	f, err := os.OpenFile(p.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	if fi, err := f.Stat(); err == nil {
		p.logStart = fi.Size()
	}
	cmd := exec.Command(p.g.Bin + string(os.PathSeparator) + p.Program)
	cmd.Env = append(slices.Clone(p.g.Env), p.extra...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: p.g.OwnProcessGroup, Pdeathsig: p.g.DeathSignal}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	return nil
}

// Pid is the program's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the program has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the program has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the program exited (nil for status 0); only meaningful once
// Done is closed.
func (p *Proc) Err() error { return p.err }

// ExitError says that the program exited, how, and the end of its log.
func (p *Proc) ExitError() error {
	return fmt.Errorf("%s (pid %d) exited (%v); see %s; its last lines:\n%s",
		p.Name, p.Pid(), p.err, p.Log, services.LastLines(p.Log, 20))
}

// Output is the program's log so far, all of its runs.
func (p *Proc) Output() (string, error) {
	b, err := os.ReadFile(p.Log)
	return string(b), err
}

// Signal sends sig to the program (not to its children).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends sig (SIGTERM for a graceful stop, another signal a test
// wants handled) and waits up to timeout for the program to exit (the
// Group's stop timeout when 0). A program still running then is killed,
// and the error says so.
func (p *Proc) Stop(sig os.Signal, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = p.g.stopTimeout()
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return p.kill(fmt.Errorf("%s did not exit within %s of %v: killed", p.Name, timeout, sig))
	}
}

// Kill sends SIGKILL, as a crash or an OOM kill would, and waits until
// the program is gone. Its children are not signalled: they must go by
// themselves (Pdeathsig), as they must in production.
func (p *Proc) Kill() error {
	return p.kill(nil)
}

// kill is Kill returning err, for the callers that kill as a last resort.
func (p *Proc) kill(err error) error {
	if kerr := p.cmd.Process.Kill(); kerr != nil && !p.Exited() {
		return fmt.Errorf("kill %s: %w", p.Name, kerr)
	}
	<-p.done
	return err
}

// Restart starts the program again with the same name, environment and
// log (appended to), after the previous run has exited: call Stop or Kill
// first. The new run is a new Proc of the same Group.
func (p *Proc) Restart() (*Proc, error) {
	if !p.Exited() {
		return nil, fmt.Errorf("restart %s: still running (pid %d); stop it first", p.Name, p.Pid())
	}
	return p.g.Start(p.Name, p.Program, p.extra...)
}
