package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs"
	"github.com/autograph/pgbackup/jobs/engine"
)

// enqueue puts a task in the queue, reporting an unreachable Redis as 503.
func (a *API) enqueue(c echo.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := a.d.Queue.EnqueueContext(c.Request().Context(), task, opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil, fmt.Errorf("%w: %w", errConflict, err)
	}
	if err != nil {
		a.d.Log.WithError(err).WithField("task_type", task.Type()).Error("enqueue failed")
		return nil, fmt.Errorf("%w: %w", errQueueUnavailable, err)
	}
	a.d.Log.WithFields(map[string]any{"task_id": info.ID, "task_type": info.Type, "queue": info.Queue}).Info("task enqueued")
	return info, nil
}

func isNotFound(err error) bool { return errors.Is(err, engine.ErrNotFound) }

// Task IDs are asynq's UUIDs or scheduled backup names.
var taskIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,200}$`)

type taskJSON struct {
	TaskID     string             `json:"task_id"`
	Type       string             `json:"type"`
	Queue      string             `json:"queue"`
	State      string             `json:"state"`
	Progress   *jobs.ProgressInfo `json:"progress"`
	Result     any                `json:"result"`
	Error      string             `json:"error"`
	Retried    int                `json:"retried"`
	MaxRetry   int                `json:"max_retry"`
	Worker     string             `json:"worker,omitempty"`
	Payload    json.RawMessage    `json:"payload,omitempty"`
	NextRunAt  string             `json:"next_process_at,omitempty"`
	FinishedAt string             `json:"completed_at,omitempty"`
}

// findTask looks for id in every queue: asynq task IDs are scoped per queue
// and the API does not know which queue a task went to.
func (a *API) findTask(id string) (*asynq.TaskInfo, error) {
	if !taskIDRe.MatchString(id) {
		return nil, badRequest("task id %q is not valid", truncate(id, 40))
	}
	for _, q := range jobs.AllQueues {
		info, err := a.d.Inspector.GetTaskInfo(q, id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errQueueUnavailable, err)
		}
		return info, nil
	}
	return nil, fmt.Errorf("%w: %s", errTaskNotFound, id)
}

func (a *API) getTask(c echo.Context) error {
	info, err := a.findTask(c.Param("id"))
	if err != nil {
		return err
	}
	out := taskJSON{
		TaskID: info.ID, Type: info.Type, Queue: info.Queue, State: info.State.String(),
		Error: info.LastErr, Retried: info.Retried, MaxRetry: info.MaxRetry,
		Payload: json.RawMessage(info.Payload),
	}
	if len(info.Result) > 0 {
		var r jobs.Result
		if err := json.Unmarshal(info.Result, &r); err == nil {
			out.Progress, out.Result, out.Worker = r.Progress, r.Outcome, r.Worker
		}
	}
	if !info.NextProcessAt.IsZero() && info.State != asynq.TaskStateCompleted {
		out.NextRunAt = info.NextProcessAt.UTC().Format("2006-01-02T15:04:05Z")
	}
	if !info.CompletedAt.IsZero() {
		out.FinishedAt = info.CompletedAt.UTC().Format("2006-01-02T15:04:05Z")
	}
	return c.JSON(http.StatusOK, out)
}
