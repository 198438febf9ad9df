package handlers

import (
	"regexp"

	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs/tasks"
)

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
	return a.accepted(c, tasks.AdoptPayload{DryRun: dry, Plan: req.Plan})
}
