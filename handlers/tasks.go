package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// enqueue puts a task in the queue, reporting an unreachable Redis as 503.
// With a reservation, the task's ID is chosen first and the reservation
// taken under it, so two requests for one backup name or one restore
// target cannot both be accepted; the second gets 409.
func (a *API) enqueue(c echo.Context, task *asynq.Task, res ...reservation) (*asynq.TaskInfo, error) {
	ctx := c.Request().Context()
	id := uuid.NewString()
	if a.d.Locks != nil {
		for i, r := range res {
			err := a.d.Locks.Acquire(ctx, r.kind, r.key, id, a.d.ReserveTTL)
			if a.reclaimable(ctx, err) {
				err = a.d.Locks.Acquire(ctx, r.kind, r.key, id, a.d.ReserveTTL)
			}
			if err != nil {
				a.releaseAll(ctx, res[:i], id)
				if errors.Is(err, tasks.ErrBusy) {
					return nil, fmt.Errorf("%w: %s", errConflict, r.busyMessage)
				}
				return nil, fmt.Errorf("%w: %w", errQueueUnavailable, err)
			}
		}
	}
	info, err := a.d.Queue.EnqueueContext(ctx, task, asynq.TaskID(id))
	if err != nil {
		a.releaseAll(ctx, res, id)
	}
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil, fmt.Errorf("%w: %w", errConflict, err)
	}
	if err != nil {
		a.d.Log.WithError(err).WithField("task_type", task.Type()).Error("enqueue failed")
		return nil, fmt.Errorf("%w: %w", errQueueUnavailable, err)
	}
	a.d.Log.WithFields(map[string]any{"task_id": info.ID, "task_type": info.Type, "queue": info.Queue, "request_id": requestIDOf(c)}).Info("task enqueued")
	// The audit line names the task it started (a replay names it too, see
	// idempotent); without this only replays and cancels named theirs.
	c.Set(auditTask, info.ID)
	return info, nil
}

type reservation struct{ kind, key, busyMessage string }

// enqueuePayload makes p a task with its kind's options and enqueues it.
func (a *API) enqueuePayload(c echo.Context, p tasks.Payload, res ...reservation) (*asynq.TaskInfo, error) {
	task, err := tasks.NewTaskWithRequestID(p, a.d.TaskOptions, requestIDOf(c))
	if err != nil {
		return nil, err
	}
	return a.enqueue(c, task, res...)
}

// acceptedNamed enqueues p, which makes the backup name, once no backup
// has that name, reserving the name for its task; it answers 202 with
// the name and where to follow the task.
func (a *API) acceptedNamed(c echo.Context, name string, p tasks.Payload) error {
	c.Set(auditBackup, name)
	parsed, err := engine.ParseName(name)
	if err != nil {
		return err
	}
	taken, err := a.nameTaken(c.Request().Context(), parsed)
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("%w: backup %s already exists", engine.ErrExists, name)
	}
	info, err := a.enqueuePayload(c, p, reservation{tasks.ScopeName, name, "a backup named " + name + " is already being created"})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, createResponse{TaskID: info.ID, BackupName: name, StatusURL: statusURL(info.ID)})
}

// accepted enqueues p and answers 202 with where to follow the task.
func (a *API) accepted(c echo.Context, p tasks.Payload, res ...reservation) error {
	info, err := a.enqueuePayload(c, p, res...)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, taskResponse{TaskID: info.ID, StatusURL: statusURL(info.ID)})
}

// reclaimable releases a reservation whose holder will never release it:
// its task was deleted (by hand, in the queue UI) or has already finished.
// Without this a name could stay blocked until the reservation's TTL.
func (a *API) reclaimable(ctx context.Context, err error) bool {
	var busy *tasks.BusyError
	if !errors.As(err, &busy) {
		return false
	}
	info, ferr := a.findTask(busy.Holder)
	switch {
	case errors.Is(ferr, errTaskNotFound):
	case ferr == nil && (info.State == asynq.TaskStateArchived || info.State == asynq.TaskStateCompleted):
	default:
		return false
	}
	a.d.Log.WithFields(map[string]any{"task_id": busy.Holder, "reservation": busy.Scope + ":" + busy.Key}).Info("reclaiming the reservation of a task that is gone or finished")
	return a.d.Locks.Release(ctx, busy.Scope, busy.Key, busy.Holder) == nil
}

func (a *API) releaseAll(ctx context.Context, res []reservation, owner string) {
	if a.d.Locks == nil {
		return
	}
	for _, r := range res {
		if err := a.d.Locks.Release(context.WithoutCancel(ctx), r.kind, r.key, owner); err != nil {
			a.d.Log.WithError(err).Warn("could not release reservation")
		}
	}
}

func isNotFound(err error) bool { return errors.Is(err, engine.ErrNotFound) }

// Task IDs are asynq's UUIDs or scheduled backup names.
var taskIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,200}$`)

type taskJSON struct {
	TaskID   string              `json:"task_id"`
	Type     string              `json:"type"`
	Queue    string              `json:"queue"`
	State    string              `json:"state"`
	Progress *tasks.ProgressInfo `json:"progress"`
	Result   any                 `json:"result"`
	// Error is the failure's class ("postgres unreachable", "checksum
	// mismatch", ...), safe for anyone who may read task status; empty for a
	// task that completed, whose earlier failed attempt, if any, is in
	// LastAttemptError. ErrorDetail, Payload and Worker are for admins
	// only; ErrorDetail holds the start of the full text, all of it is in
	// the worker's log.
	Error            string          `json:"error"`
	ErrorDetail      string          `json:"error_detail,omitempty"`
	LastAttemptError string          `json:"last_attempt_error,omitempty"`
	Retried          int             `json:"retried"`
	MaxRetry         int             `json:"max_retry"`
	Worker           string          `json:"worker,omitempty"`
	Payload          json.RawMessage `json:"payload,omitempty"`
	NextRunAt        string          `json:"next_process_at,omitempty"`
	FinishedAt       string          `json:"completed_at,omitempty"`
	// StartedAt is when a worker began the latest attempt.
	StartedAt string `json:"started_at,omitempty"`
	// RequestID is the X-Request-ID of the request that made the task.
	RequestID string `json:"request_id,omitempty"`
}

// findTask looks for id in every queue: asynq task IDs are scoped per queue
// and the API does not know which queue a task went to.
func (a *API) findTask(id string) (*asynq.TaskInfo, error) {
	if !taskIDRe.MatchString(id) {
		return nil, badRequest("task id %q is not valid", truncate(id, 40))
	}
	for _, q := range tasks.AllQueues {
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

// maxErrorDetail bounds the error detail shown to admins.
const maxErrorDetail = 2048

// truncateBytes cuts s to at most n bytes on a UTF-8 boundary.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (a *API) getTask(c echo.Context) error {
	info, err := a.findTask(c.Param("id"))
	if err != nil {
		return err
	}
	out := taskJSON{
		TaskID: info.ID, Type: info.Type, Queue: info.Queue, State: info.State.String(),
		Retried: info.Retried, MaxRetry: info.MaxRetry, RequestID: info.Headers[tasks.HeaderRequestID],
	}
	class, detail := tasks.SplitTaskError(info.LastErr)
	if info.State == asynq.TaskStateCompleted {
		out.LastAttemptError = class
	} else {
		out.Error = class
	}
	// Only admins see what a task was given, where it ran and how it failed
	// in full: a payload may name databases, buckets or a webhook, the
	// worker is a host name, and the detail may hold addresses and paths.
	admin := roleOf(c) >= RoleAdmin
	if admin {
		out.Payload = json.RawMessage(info.Payload)
		if detail != "" {
			out.ErrorDetail = truncateBytes(detail, maxErrorDetail)
		}
	}
	if len(info.Result) > 0 {
		var r tasks.Result
		if err := json.Unmarshal(info.Result, &r); err == nil {
			out.Progress, out.Result = r.Progress, r.Outcome
			if admin {
				out.Worker = r.Worker
			}
			if !r.StartedAt.IsZero() {
				out.StartedAt = r.StartedAt.Format(time.RFC3339Nano)
			}
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

// cancelTask stops a task for good. The cancellation is recorded first, so
// the task becomes a no-op wherever and whenever it runs next; then a
// running handler's context is cancelled (which kills its pg_dump and
// aborts its upload), and the task is archived so asynq does not run it
// again (it retries cancelled tasks by default, asynq #532).
// cancelWait bounds how long a cancel waits for the handler to return.
const cancelWait = 10 * time.Second

// awaitNotActive polls the task until it is no longer active, the request
// ends, or cancelWait passes; it returns the last state seen.
func (a *API) awaitNotActive(ctx context.Context, info *asynq.TaskInfo) (*asynq.TaskInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, cancelWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for info.State == asynq.TaskStateActive {
		select {
		case <-ctx.Done():
			return info, nil
		case <-tick.C:
		}
		next, err := a.d.Inspector.GetTaskInfo(info.Queue, info.ID)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errQueueUnavailable, err)
		}
		info = next
	}
	return info, nil
}

func (a *API) cancelTask(c echo.Context) error {
	c.Set(auditTask, c.Param("id"))
	info, err := a.findTask(c.Param("id"))
	if err != nil {
		return err
	}
	if info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived {
		return fmt.Errorf("%w: task %s is already %s", errConflict, info.ID, info.State)
	}
	ctx := c.Request().Context()
	if a.d.Locks != nil {
		if err := a.d.Locks.MarkCancelled(ctx, info.ID, a.d.ReserveTTL); err != nil {
			return fmt.Errorf("%w: %w", errQueueUnavailable, err)
		}
	}
	if info.State == asynq.TaskStateActive {
		if err := a.d.Inspector.CancelProcessing(info.ID); err != nil {
			return fmt.Errorf("%w: %w", errQueueUnavailable, err)
		}
		// The processor moves the task to retry once the handler returns;
		// archiving it then makes the cancel final. The wait follows the
		// request: a client that hangs up, or the server shutting down,
		// ends it, and the task still no-ops wherever it runs next.
		info, err = a.awaitNotActive(ctx, info)
		if err != nil {
			return err
		}
	}
	state := info.State.String()
	if info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted && info.State != asynq.TaskStateActive {
		if err := a.d.Inspector.ArchiveTask(info.Queue, info.ID); err == nil {
			state = asynq.TaskStateArchived.String()
		} else if !errors.Is(err, asynq.ErrTaskNotFound) {
			a.d.Log.WithError(err).WithField("task_id", info.ID).Warn("could not archive cancelled task; it will no-op when run")
		}
	}
	a.d.Log.WithFields(map[string]any{"task_id": info.ID, "state": state}).Info("task cancelled")
	return c.JSON(http.StatusAccepted, map[string]string{"task_id": info.ID, "state": state, "status_url": statusURL(info.ID)})
}
