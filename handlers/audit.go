package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/coord"
)

// AuditTrail keeps recent admin actions (a *coord.AuditTrail).
type AuditTrail interface {
	Record(ctx context.Context, e coord.AuditEntry) error
	Recent(ctx context.Context, n int) ([]coord.AuditEntry, error)
}

// What a handler tells the audit line about the request it served.
const (
	auditBackup = "pgbackup.audit.backup"
	auditTarget = "pgbackup.audit.target"
	auditTask   = "pgbackup.audit.task"
)

// maxAuditLimit bounds GET /api/admin/audit?limit=N; it is also what the
// Redis list keeps.
const maxAuditLimit = 1000

// audited writes an audit line for every state-changing request an admin
// makes, whatever its outcome: on the audit logger (its own stream,
// "audit": true) and into the shared trail that GET /api/admin/audit reads.
// A request by a lesser token (a viewer's, refused) gets a "refused action"
// line on the audit logger only: the trail is bounded, and a viewer's
// requests must not be able to push admin actions out of it.
func (a *API) audited(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if m := c.Request().Method; m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions {
			return next(c)
		}
		err := next(c)
		status := c.Response().Status
		outcome := "ok"
		if err != nil {
			status, outcome = statusOf(err)
		}
		str := func(key string) string { s, _ := c.Get(key).(string); return s }
		token, _ := c.Get(tokenKey).(string)
		e := coord.AuditEntry{
			At: time.Now().UTC(), Token: TokenFingerprint(token), Action: c.Request().Method + " " + c.Path(),
			Backup: str(auditBackup), Target: str(auditTarget), Task: str(auditTask),
			Client: c.RealIP(), Status: status, Outcome: outcome, RequestID: requestIDOf(c),
		}
		line := a.auditLog.WithFields(logrus.Fields{
			"token_fingerprint": e.Token, "action": e.Action, "backup_name": e.Backup, "target": e.Target,
			"task_id": e.Task, "client": e.Client, "status": e.Status, "outcome": e.Outcome, "request_id": e.RequestID,
			"role": roleOf(c).String(),
		})
		if roleOf(c) < RoleAdmin {
			line.Info("refused action")
			return err
		}
		line.Info("admin action")
		if a.d.Audit != nil {
			// Recorded even when the client has gone: the action happened.
			if rerr := a.d.Audit.Record(context.WithoutCancel(c.Request().Context()), e); rerr != nil {
				a.d.Log.WithError(rerr).Warn("could not record the audit entry in redis; it is in the audit log")
			}
		}
		return err
	}
}

func (a *API) auditEntries(c echo.Context) error {
	limit := 100
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			return badRequest("limit: want a whole number from 1 to %d", maxAuditLimit)
		}
		limit = n
	}
	if a.d.Audit == nil {
		return c.JSON(http.StatusOK, map[string]any{"entries": []coord.AuditEntry{}, "count": 0})
	}
	entries, err := a.d.Audit.Recent(c.Request().Context(), limit)
	if err != nil {
		return fmt.Errorf("%w: %w", errQueueUnavailable, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"entries": entries, "count": len(entries)})
}
