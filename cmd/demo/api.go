package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/autograph/pgbackup/internal/harness"
)

// taskTimeout is how long a task may take before the demo gives up.
const taskTimeout = 180 * time.Second

// apiClient calls the service's HTTP API with the admin token.
type apiClient struct {
	base, token string
	http        *http.Client
}

// call sends body (if any) as JSON and decodes a 2xx answer into out (if
// any); any other status is an error holding the answer.
func (c apiClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode %q: %w", method, path, raw, err)
		}
	}
	return nil
}

// ready reports whether /readyz answers 200.
func (c apiClient) ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// taskStatus is the part of GET /api/admin/tasks/{id} the demo shows.
type taskStatus struct {
	State    string `json:"state"`
	Progress *struct {
		Phase string `json:"phase"`
		Bytes int64  `json:"bytes"`
	} `json:"progress"`
	Worker string          `json:"worker"`
	Error  string          `json:"error"`
	Result json.RawMessage `json:"result"`
}

// line is the status as the demo prints it.
func (s taskStatus) line() string {
	phase, n := "-", int64(0)
	if s.Progress != nil {
		phase, n = s.Progress.Phase, s.Progress.Bytes
	}
	line := fmt.Sprintf("state=%s  phase=%s  bytes=%d", s.State, phase, n)
	if s.Worker != "" {
		line += "  worker=" + s.Worker
	}
	return line
}

// waitTask prints each change of the task's state, phase and bytes until
// it completes; it fails if the task is archived (out of retries), takes
// longer than taskTimeout, or a program exits.
func (d *demo) waitTask(ctx context.Context, label, id string) (taskStatus, error) {
	began := time.Now()
	last := ""
	var st taskStatus
	err := harness.Poll(ctx, taskTimeout, 300*time.Millisecond, func() (bool, error) {
		if err := d.progs.Exited(); err != nil {
			return false, err
		}
		st = taskStatus{}
		if err := d.api.call(ctx, http.MethodGet, "/api/admin/tasks/"+id, nil, &st); err != nil {
			return false, err
		}
		if line := st.line(); line != last {
			fmt.Fprintf(d.out.out, "    [%s %3ds] %s\n", label, int(time.Since(began).Seconds()), line)
			last = line
		}
		switch st.State {
		case "completed":
			return true, nil
		case "archived":
			return false, fmt.Errorf("%s task %s failed for good: %s", label, id, st.Error)
		case "retry":
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
