package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
)

// taskTimeout is how long a task may take before the demo gives up.
const taskTimeout = 180 * time.Second

// newAPIClient is the typed client of the demo's API, with the admin
// token; hc is shared with the harness's readiness probe.
func newAPIClient(addr, token string, hc *http.Client) (*client.Client, error) {
	return client.New("http://"+addr, token, client.WithHTTPClient(hc))
}

// statusLine is a task's status as the demo prints it.
func statusLine(t *client.Task) string {
	phase, n := "-", int64(0)
	if t.Progress != nil {
		phase, n = t.Progress.Phase, t.Progress.Bytes
	}
	line := fmt.Sprintf("state=%s  phase=%s  bytes=%d", t.State, phase, n)
	if t.Worker != "" {
		line += "  worker=" + t.Worker
	}
	return line
}

// waitTask prints each change of the task's state, phase and bytes until
// it completes; it fails if the task is archived (out of retries), takes
// longer than taskTimeout, or a program exits. (client.WaitTask does not
// fit: the demo also stops waiting when one of its programs died.)
func (d *demo) waitTask(ctx context.Context, label, id string) (*client.Task, error) {
	began := time.Now()
	last := ""
	st := &client.Task{}
	err := harness.Poll(ctx, taskTimeout, 300*time.Millisecond, func() (bool, error) {
		if err := d.progs.Exited(); err != nil {
			return false, err
		}
		t, err := d.api.Task(ctx, id)
		if err != nil {
			return false, err
		}
		st = t
		if line := statusLine(st); line != last {
			fmt.Fprintf(d.out.out, "    [%s %3ds] %s\n", label, int(time.Since(began).Seconds()), line)
			last = line
		}
		switch st.State {
		case client.StateCompleted:
			return true, nil
		case client.StateArchived:
			return false, fmt.Errorf("%s task %s failed for good: %s", label, id, st.Error)
		case client.StateRetry:
			if st.Error != "" {
				d.out.say("  retrying after: %s", st.Error)
			}
		}
		return false, nil
	})
	if err != nil {
		return st, fmt.Errorf("%s task %s (state %s): %w", label, id, st.State, err)
	}
	return st, nil
}
