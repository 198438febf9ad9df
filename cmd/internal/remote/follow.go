package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/autograph/pgbackup/cmd/internal/cli"
	"github.com/autograph/pgbackup/handlers/client"
)

func describe(t *client.Task) string {
	s := fmt.Sprintf("task %s (%s): %s", t.TaskID, t.Type, t.State)
	if t.Progress != nil && t.Progress.Phase != "" {
		s += fmt.Sprintf(", %s %s", t.Progress.Phase, human(t.Progress.Bytes))
	}
	if t.Error != "" {
		s += ", error: " + t.Error
	}
	return s
}

// follow waits for the task to finish, drawing progress on stderr: in
// place on a terminal, as plain lines (a new phase, or every few seconds
// while bytes move) otherwise. The last line says done or the error.
func follow(ctx context.Context, cl *client.Client, id string, f *cli.Flags, o IO) error {
	if f.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.Timeout)
		defer cancel()
	}
	var raw client.Response
	d := &drawer{w: o.Stderr, terminal: o.IsTerminal, start: time.Now(), lastBytes: -1}
	t, err := cl.WaitTask(ctx, id, client.WaitOptions{Interval: o.PollInterval, Observe: d.draw,
		CallOptions: []client.CallOption{client.WithResponse(&raw)}})
	if o.IsTerminal && (err == nil || ctx.Err() != nil) {
		fmt.Fprintln(o.Stderr)
	}
	switch {
	case ctx.Err() != nil && f.Timeout > 0:
		return fail(ExitFailed, "task %s: gave up waiting after %s (it goes on)", id, f.Timeout)
	case ctx.Err() != nil:
		return fail(ExitFailed, "task %s: interrupted (it goes on; pgbackup cancel %s stops it)", id, id)
	case err != nil:
		return err
	case t.State == client.StateCompleted:
		fmt.Fprintln(o.Stderr, "done")
		if f.JSON {
			return print(o.Stdout, true, json.RawMessage(raw.Body), "")
		}
		if f.Command == "adopt" {
			var res client.AdoptResult
			if err := json.Unmarshal(t.Result, &res); err != nil {
				return fmt.Errorf("adopt: read the result: %w", err)
			}
			return WriteAdoptResult(o.Stdout, res)
		}
		return nil
	}
	msg := first(t.Error, "failed")
	if t.ErrorDetail != "" {
		msg += ": " + t.ErrorDetail
	}
	fmt.Fprintf(o.Stderr, "error: %s\n", msg)
	if f.JSON {
		_ = print(o.Stdout, true, json.RawMessage(raw.Body), "")
	}
	return fail(ExitFailed, "")
}

// drawer draws a task's progress line.
type drawer struct {
	w         io.Writer
	terminal  bool
	start     time.Time
	lastPhase string
	lastLine  time.Time
	lastBytes int64
}

func (d *drawer) draw(t *client.Task) {
	phase, bytes := t.State, int64(0)
	if t.Progress != nil {
		bytes = t.Progress.Bytes
		if t.Progress.Phase != "" && t.State == client.StateActive {
			phase = t.Progress.Phase
		}
	}
	if t.State == client.StateRetry && t.Error != "" {
		phase = "retrying after: " + t.Error
	}
	elapsed := time.Since(d.start)
	rate := ""
	if bytes > 0 && elapsed > 0 {
		rate = human(int64(float64(bytes)/elapsed.Seconds())) + "/s"
	}
	line := fmt.Sprintf("%-14s %10s %12s %8s", phase, human(bytes), rate, elapsed.Round(time.Second))
	switch {
	case d.terminal:
		fmt.Fprintf(d.w, "\r\033[K%s", line)
	case phase != d.lastPhase || (bytes != d.lastBytes && time.Since(d.lastLine) >= 5*time.Second):
		fmt.Fprintln(d.w, line)
		d.lastLine = time.Now()
	}
	d.lastPhase, d.lastBytes = phase, bytes
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
