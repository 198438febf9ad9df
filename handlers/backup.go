package handlers

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
)

type createRequest struct {
	BackupName    *string  `json:"backup_name"`
	Format        *string  `json:"format"`
	UploadToMinio *bool    `json:"upload_to_minio"`
	Database      *string  `json:"database"`
	Stores        []string `json:"stores"`
	// Target takes database, format and stores from a configured target
	// (each may still be given explicitly), and records the target in the
	// manifest.
	Target *string `json:"target"`
}

type createResponse struct {
	TaskID     string `json:"task_id"`
	BackupName string `json:"backup_name"`
	StatusURL  string `json:"status_url"`
}

// createBackup enqueues a backup. Fields come from the JSON body or, as in
// the old service, from query parameters; the body wins where both are set.
func (a *API) createBackup(c echo.Context) error {
	var req createRequest
	if err := decodeJSON(c, a.d.BodyLimit, &req); err != nil {
		return err
	}
	if err := fillFromQuery(c, &req); err != nil {
		return err
	}

	var target *jobs.Target
	if name := deref(req.Target); name != "" {
		t, ok := a.d.Targets.Get(name)
		if !ok {
			return fmt.Errorf("%w: target %q is not configured", errTargetNotFound, truncate(name, 40))
		}
		target = &t
		if req.Database == nil {
			req.Database = &t.Database
		} else if *req.Database != t.Database {
			return badRequest("database %q is not target %s's database %s", truncate(*req.Database, 64), t.Name, t.Database)
		}
		if req.Format == nil {
			f := string(t.Format)
			req.Format = &f
		}
		if req.Stores == nil && req.UploadToMinio == nil && len(t.Stores) > 0 {
			req.Stores = t.Stores
		}
	}
	format, err := engine.ParseFormat(deref(req.Format))
	if err != nil {
		return err
	}
	db := deref(req.Database)
	if db != "" && !pgtool.ValidIdentifier(db) {
		return badRequest("database %q is not a valid identifier (letters, digits, _ and $, at most 63)", truncate(db, 64))
	}
	stores, err := a.createStores(c, req.Stores, req.UploadToMinio)
	if err != nil {
		return err
	}
	targetName := ""
	if target != nil {
		targetName = target.Name
	}

	ctx := c.Request().Context()
	name := deref(req.BackupName)
	defer func() { c.Set(auditBackup, name) }()
	if req.BackupName == nil || name == "" {
		name, err = a.freeGeneratedName(c)
		if err != nil {
			return err
		}
	} else {
		if err := engine.ValidateName(name); err != nil {
			return err
		}
		if _, where, err := a.d.Backups.Find(ctx, name, nil); err == nil {
			return fmt.Errorf("%w: backup %s already exists in %v", engine.ErrExists, name, where)
		} else if !isNotFound(err) {
			return err
		}
	}

	info, err := a.enqueuePayload(c, jobs.BackupPayload{BackupName: name, Format: string(format), Database: db, Stores: stores,
		Target: targetName}, reservation{jobs.KindName, name, "a backup named " + name + " is already being created"})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, createResponse{TaskID: info.ID, BackupName: name, StatusURL: statusURL(info.ID)})
}

// freeGeneratedName returns autograph_backup_{YYYYMMDD_HHMMSS}, with a
// counter appended if a backup of that second already exists.
func (a *API) freeGeneratedName(c echo.Context) (string, error) {
	base := "autograph_backup_" + time.Now().UTC().Format("20060102_150405")
	name := base
	for i := 2; i < 100; i++ {
		_, _, err := a.d.Backups.Find(c.Request().Context(), name, nil)
		if isNotFound(err) {
			return name, nil
		}
		if err != nil {
			return "", err
		}
		name = fmt.Sprintf("%s_%d", base, i)
	}
	return "", fmt.Errorf("%w: no free generated name for %s", errConflict, base)
}

type restoreRequest struct {
	BackupName        *string `json:"backup_name"`
	DownloadFromMinio *bool   `json:"download_from_minio"`
	From              *string `json:"from"`
	Clean             *bool   `json:"clean"`
	TargetDatabase    *string `json:"target_database"`
	Replace           *bool   `json:"replace"`
	AllowUnsigned     *bool   `json:"allow_unsigned"`
}

type taskResponse struct {
	TaskID    string `json:"task_id"`
	StatusURL string `json:"status_url"`
}

// restoreBackup enqueues a restore after checking that the backup exists
// where it is to be read from.
func (a *API) restoreBackup(c echo.Context) error {
	var req restoreRequest
	if err := decodeJSON(c, a.d.BodyLimit, &req); err != nil {
		return err
	}
	if err := fillFromQuery(c, &req); err != nil {
		return err
	}
	name := deref(req.BackupName)
	if name == "" {
		return badRequest("backup_name is required")
	}
	if err := engine.ValidateName(name); err != nil {
		return err
	}
	target := deref(req.TargetDatabase)
	c.Set(auditBackup, name)
	c.Set(auditTarget, target)
	if target != "" && !pgtool.ValidIdentifier(target) {
		return badRequest("target_database %q is not a valid identifier (letters, digits, _ and $, at most 63)", truncate(target, 64))
	}
	from, err := a.readFrom(req.From, req.DownloadFromMinio)
	if err != nil {
		return err
	}
	m, _, err := a.d.Backups.Find(c.Request().Context(), name, listOf(from))
	if err != nil {
		return err
	}
	if target == "" {
		// The database the backup was taken from: restoring elsewhere by
		// default would overwrite whatever POSTGRES_DB happens to be.
		target = m.Database
	}
	p := jobs.RestorePayload{BackupName: name, From: from, TargetDatabase: target,
		Clean: isTrue(req.Clean), Replace: isTrue(req.Replace), AllowUnsigned: isTrue(req.AllowUnsigned)}
	if err := engine.CheckRestoreMode(m.Format, p.Clean, p.Replace); err != nil {
		return err
	}
	c.Set(auditTarget, target)
	if p.AllowUnsigned {
		a.auditLog.WithFields(map[string]any{"backup_name": name, "target": target}).Warn("restore allows an unsigned manifest")
	}
	return a.accepted(c, p, reservation{jobs.KindRestore, target, "a restore into database " + target + " is already queued or running"})
}

type backupJSON struct {
	BackupName string    `json:"backup_name"`
	Format     string    `json:"format"`
	Database   string    `json:"database"`
	SizeBytes  int64     `json:"size_bytes"`
	SizeMB     float64   `json:"size_mb"`
	SHA256     string    `json:"sha256"`
	CreatedAt  time.Time `json:"created_at"`
	Locations  []string  `json:"locations"`
}

func (a *API) listBackups(c echo.Context) error {
	stores, err := a.selectedStores(c, nil, listFlags)
	if err != nil {
		return err
	}
	entries, err := a.d.Backups.List(c.Request().Context(), stores)
	if err != nil {
		return err
	}
	out := make([]backupJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, backupJSON{
			BackupName: e.Name, Format: string(e.Format), Database: e.Database,
			SizeBytes: e.SizeBytes, SizeMB: float64(e.SizeBytes*100/(1<<20)) / 100,
			SHA256: e.SHA256, CreatedAt: e.FinishedAt, Locations: e.Locations,
		})
	}
	return c.JSON(http.StatusOK, map[string]any{"backups": out, "count": len(out)})
}

type deleteRequest struct {
	Stores []string `json:"stores"`
}

func (a *API) deleteBackup(c echo.Context) error {
	name := c.Param("name")
	if err := engine.ValidateName(name); err != nil {
		return err
	}
	c.Set(auditBackup, name)
	var req deleteRequest
	if err := decodeJSON(c, a.d.BodyLimit, &req); err != nil {
		return err
	}
	stores, err := a.selectedStores(c, req.Stores, deleteFlags)
	if err != nil {
		return err
	}
	if _, _, err := a.d.Backups.Find(c.Request().Context(), name, stores); err != nil {
		return err
	}
	return a.accepted(c, jobs.DeletePayload{BackupName: name, Stores: stores})
}

type verifyRequest struct {
	From          *string `json:"from"`
	AllowUnsigned *bool   `json:"allow_unsigned"`
}

// verifyBackup enqueues a verify task: the archive is read back in full,
// its checksum compared with the manifest and its table of contents read
// by pg_restore --list. It is a POST: it starts work, and a GET could be
// triggered by any link or image.
func (a *API) verifyBackup(c echo.Context) error {
	name := c.Param("name")
	if err := engine.ValidateName(name); err != nil {
		return err
	}
	c.Set(auditBackup, name)
	var req verifyRequest
	if err := decodeJSON(c, a.d.BodyLimit, &req); err != nil {
		return err
	}
	if req.From == nil {
		req.From = queryString(c, "from")
	}
	from, err := a.readFrom(req.From, nil)
	if err != nil {
		return err
	}
	if _, _, err := a.d.Backups.Find(c.Request().Context(), name, listOf(from)); err != nil {
		return err
	}
	return a.accepted(c, jobs.VerifyPayload{BackupName: name, From: from, AllowUnsigned: isTrue(req.AllowUnsigned)})
}

func isTrue(b *bool) bool { return b != nil && *b }

func statusURL(id string) string { return "/api/admin/tasks/" + id }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
