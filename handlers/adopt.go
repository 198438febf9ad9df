package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// adoptWait is how long POST /api/admin/backup/adopt waits for its task
// to finish so that the answer itself lists what was adopted and skipped;
// past it, the answer is 202 with the task to follow. It stays well under
// the HTTP server's write timeout (2 minutes).
var adoptWait = 90 * time.Second

// adoptRequest is the body of POST /api/admin/backup/adopt.
type adoptRequest struct {
	DryRun *bool  `json:"dry_run"`
	Plan   string `json:"plan"`
}

var planRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// adoptBackups enqueues an adoption of the old manager's archives. It is
// a task, not work done here: the API has no pg_restore to check the
// archives with, and reading every one in full takes a worker's time. A
// real adoption must name the plan of a dry run, so that it applies what
// a person has read.
func (a *API) adoptBackups(c echo.Context) error {
	var req adoptRequest
	if err := decodeJSON(c, a.d.BodyLimit, &req); err != nil {
		return err
	}
	dry := isTrue(req.DryRun)
	switch {
	case dry && req.Plan != "":
		return badRequest("plan: a dry run takes no plan; it gives one")
	case !dry && !planRe.MatchString(req.Plan):
		return badRequest(`plan: give the plan (64 hex digits) of a dry run, which lists what will be adopted; run with "dry_run": true first`)
	}
	info, err := a.enqueuePayload(c, tasks.AdoptPayload{DryRun: dry, Plan: req.Plan})
	if err != nil {
		return err
	}
	return a.adoptAnswer(c, info)
}

// adoptAnswer waits for the adopt task and answers 200 with its result
// (the lists, the plan) beside the task's id; a failed adoption is an
// error answer naming why (409 when the plan changed), and one still
// running after adoptWait is 202, as for every other task.
func (a *API) adoptAnswer(c echo.Context, info *asynq.TaskInfo) error {
	accepted := taskResponse{TaskID: info.ID, StatusURL: statusURL(info.ID)}
	deadline := time.Now().Add(adoptWait)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		cur, err := a.d.Inspector.GetTaskInfo(info.Queue, info.ID)
		if err != nil {
			return c.JSON(http.StatusAccepted, accepted)
		}
		switch cur.State {
		case asynq.TaskStateCompleted:
			var r tasks.Result
			var out tasks.AdoptOutcome
			if err := json.Unmarshal(cur.Result, &r); err != nil {
				return fmt.Errorf("adopt: read the task's result: %w", err)
			}
			if b, err := json.Marshal(r.Outcome); err != nil || json.Unmarshal(b, &out) != nil {
				return fmt.Errorf("adopt: the task's result is not an adoption's")
			}
			return c.JSON(http.StatusOK, adoptAnswer{taskResponse: accepted, AdoptOutcome: out})
		case asynq.TaskStateArchived:
			class, detail := tasks.SplitTaskError(cur.LastErr)
			err := fmt.Errorf("adopt (task %s): %s: %s", info.ID, class, truncateBytes(detail, maxErrorDetail))
			if class == tasks.Classify(engine.ErrPlanChanged) {
				return fmt.Errorf("%w: %w", errConflict, err)
			}
			return echo.NewHTTPError(http.StatusUnprocessableEntity, err.Error())
		}
		if time.Now().After(deadline) {
			return c.JSON(http.StatusAccepted, accepted)
		}
		select {
		case <-c.Request().Context().Done():
			return c.Request().Context().Err()
		case <-tick.C:
		}
	}
}

// adoptAnswer is the 200 answer: the task, and what it adopted and
// skipped.
type adoptAnswer struct {
	taskResponse
	tasks.AdoptOutcome
}
