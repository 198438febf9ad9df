package worker

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// progressWriter publishes progress through the task's ResultWriter, which
// keeps only the latest value, so the API always reads the current state.
type progressWriter struct {
	t       *asynq.Task
	worker  string
	started time.Time
	mu      sync.Mutex
	last    tasks.ProgressInfo
}

func newProgressWriter(t *asynq.Task, worker string) *progressWriter {
	pw := &progressWriter{t: t, worker: worker, started: time.Now().UTC()}
	pw.report(engine.Progress{Phase: "started"})
	return pw
}

func (pw *progressWriter) report(p engine.Progress) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.last = tasks.ProgressInfo{Phase: p.Phase, Bytes: p.Bytes, UpdatedAt: time.Now().UTC()}
	pw.write(tasks.Result{Progress: &pw.last, Worker: pw.worker, StartedAt: pw.started})
}

func (pw *progressWriter) finish(outcome any) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.last.Phase, pw.last.UpdatedAt = "done", time.Now().UTC()
	pw.write(tasks.Result{Progress: &pw.last, Outcome: outcome, Worker: pw.worker, StartedAt: pw.started})
}

func (pw *progressWriter) write(r tasks.Result) {
	if w := pw.t.ResultWriter(); w != nil {
		if b, err := json.Marshal(r); err == nil {
			// Fails only once the task's context is done; progress is
			// best effort and must never fail the task.
			_, _ = w.Write(b)
		}
	}
}

type progressKey struct{}

// progressOf returns the progress reporter the adapter put in ctx (nil
// outside a task, which the engine accepts).
func progressOf(ctx context.Context) engine.ProgressFunc {
	f, _ := ctx.Value(progressKey{}).(engine.ProgressFunc)
	return f
}

// taskIDOf returns the running task's ID.
func taskIDOf(ctx context.Context) string {
	id, _ := asynq.GetTaskID(ctx)
	return id
}
