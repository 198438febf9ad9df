package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// task is the part of GET /api/admin/tasks/{id} the CLI reads; raw is
// all of it, for --json.
type task struct {
	ID       string `json:"task_id"`
	Type     string `json:"type"`
	State    string `json:"state"`
	Error    string `json:"error"`
	Detail   string `json:"error_detail"`
	Progress *struct {
		Phase string `json:"phase"`
		Bytes int64  `json:"bytes"`
	} `json:"progress"`
	raw json.RawMessage
}

func getTask(ctx context.Context, cl *client, id string) (*task, error) {
	var raw json.RawMessage
	if err := cl.do(ctx, "GET", "/api/admin/tasks/"+url.PathEscape(id), nil, &raw); err != nil {
		return nil, err
	}
	t := &task{raw: raw}
	if err := json.Unmarshal(raw, t); err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	return t, nil
}

func describe(t *task) string {
	s := fmt.Sprintf("task %s (%s): %s", t.ID, t.Type, t.State)
	if t.Progress != nil && t.Progress.Phase != "" {
		s += fmt.Sprintf(", %s %s", t.Progress.Phase, human(t.Progress.Bytes))
	}
	if t.Error != "" {
		s += ", error: " + t.Error
	}
	return s
}

// follow polls the task until it finishes, drawing progress on stderr: in
// place on a terminal, as plain lines (a new phase, or every few seconds
// while bytes move) otherwise. The last line says done or the error.
func follow(ctx context.Context, cl *client, id string, c common, o IO) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	start := time.Now()
	var lastPhase string
	var lastLine time.Time
	var lastBytes int64 = -1
	tick := time.NewTicker(o.PollInterval)
	defer tick.Stop()
	for {
		t, err := getTask(ctx, cl, id)
		if err != nil {
			if ctx.Err() != nil {
				return fail(ExitFailed, "task %s: gave up waiting after %s", id, c.timeout)
			}
			return err
		}
		phase, bytes := t.State, int64(0)
		if t.Progress != nil {
			bytes = t.Progress.Bytes
			if t.Progress.Phase != "" && t.State == "active" {
				phase = t.Progress.Phase
			}
		}
		if t.State == "retry" && t.Error != "" {
			phase = "retrying after: " + t.Error
		}
		elapsed := time.Since(start)
		rate := ""
		if bytes > 0 && elapsed > 0 {
			rate = human(int64(float64(bytes)/elapsed.Seconds())) + "/s"
		}
		line := fmt.Sprintf("%-14s %10s %12s %8s", phase, human(bytes), rate, elapsed.Round(time.Second))
		switch {
		case o.IsTerminal:
			fmt.Fprintf(o.Stderr, "\r\033[K%s", line)
		case phase != lastPhase || (bytes != lastBytes && time.Since(lastLine) >= 5*time.Second):
			fmt.Fprintln(o.Stderr, line)
			lastLine = time.Now()
		}
		lastPhase, lastBytes = phase, bytes
		switch t.State {
		case "completed":
			if o.IsTerminal {
				fmt.Fprintln(o.Stderr)
			}
			fmt.Fprintln(o.Stderr, "done")
			if c.json {
				return print(o.Stdout, true, t.raw, "")
			}
			return nil
		case "archived":
			if o.IsTerminal {
				fmt.Fprintln(o.Stderr)
			}
			msg := first(t.Error, "failed")
			if t.Detail != "" {
				msg += ": " + t.Detail
			}
			fmt.Fprintf(o.Stderr, "error: %s\n", msg)
			if c.json {
				_ = print(o.Stdout, true, t.raw, "")
			}
			return fail(ExitFailed, "")
		}
		select {
		case <-ctx.Done():
			if o.IsTerminal {
				fmt.Fprintln(o.Stderr)
			}
			if c.timeout > 0 {
				return fail(ExitFailed, "task %s: gave up waiting after %s (it goes on)", id, c.timeout)
			}
			return fail(ExitFailed, "task %s: interrupted (it goes on; pgbackup cancel %s stops it)", id, id)
		case <-tick.C:
		}
	}
}

// human is a byte count in binary units.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
