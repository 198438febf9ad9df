package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// ErrTimeout is Poll's error when the condition never held in time.
var ErrTimeout = errors.New("timed out")

// Poll calls check every interval until it reports done or fails,
// timeout passes (an error wrapping ErrTimeout) or ctx ends (its cause).
func Poll(ctx context.Context, timeout, interval time.Duration, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %s", ErrTimeout, timeout))
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if done, err := check(); err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// WaitFor polls cond until it holds, failing at once with ExitError when
// the program exits first, and with what in the error after timeout.
func (p *Proc) WaitFor(ctx context.Context, what string, timeout time.Duration, cond func() bool) error {
	err := Poll(ctx, timeout, 50*time.Millisecond, func() (bool, error) {
		if cond() {
			return true, nil
		}
		if p.Exited() {
			return false, p.ExitError()
		}
		return false, nil
	})
	if err != nil && errors.Is(err, ErrTimeout) {
		return fmt.Errorf("%s: %s: %w; see %s", p.Name, what, err, p.Log)
	}
	return err
}

// WaitHTTP waits until GET url answers 200, with client (the Group's
// when nil): a program's readiness endpoint.
func (p *Proc) WaitHTTP(ctx context.Context, client *http.Client, url string, timeout time.Duration) error {
	if client == nil {
		client = p.g.client()
	}
	return p.WaitFor(ctx, "no 200 from "+url, timeout, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// WaitPort waits until addr (host:port) accepts a TCP connection.
func (p *Proc) WaitPort(ctx context.Context, addr string, timeout time.Duration) error {
	return p.WaitFor(ctx, addr+" not listening", timeout, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// WaitLog waits until this run of the program has logged text (earlier
// runs' lines in the same log do not count).
func (p *Proc) WaitLog(ctx context.Context, text string, timeout time.Duration) error {
	return p.WaitFor(ctx, fmt.Sprintf("no %q in its log", text), timeout, func() bool {
		return bytes.Contains(p.runLog(), []byte(text))
	})
}

// runLog is what this run wrote to the log so far (at most 16 MiB).
func (p *Proc) runLog() []byte {
	f, err := os.Open(p.Log)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(p.logStart, io.SeekStart); err != nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(f, 16<<20))
	return b
}
