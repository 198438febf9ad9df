package handlers

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs"
	"github.com/autograph/pgbackup/jobs/engine"
)

type createRequest struct {
	BackupName    *string `json:"backup_name"`
	Format        *string `json:"format"`
	UploadToMinio *bool   `json:"upload_to_minio"`
	Database      *string `json:"database"`
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

	format, err := engine.ParseFormat(deref(req.Format))
	if err != nil {
		return err
	}
	db := deref(req.Database)
	if db != "" && !configs.ValidIdentifier(db) {
		return badRequest("database %q is not a valid identifier (letters, digits, _ and $, at most 63)", truncate(db, 64))
	}
	stores := []string{"local"}
	upload := a.d.Backups.HasStore("minio")
	if req.UploadToMinio != nil {
		upload = *req.UploadToMinio
	}
	if upload {
		if !a.d.Backups.HasStore("minio") {
			return badRequest("upload_to_minio is true but no MinIO is configured (MINIO_ENDPOINT)")
		}
		stores = append(stores, "minio")
	}

	ctx := c.Request().Context()
	name := deref(req.BackupName)
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

	task, err := jobs.NewBackupTask(jobs.BackupPayload{BackupName: name, Format: string(format), Database: db, Stores: stores}, a.d.TaskOptions)
	if err != nil {
		return err
	}
	info, err := a.enqueue(c, task, reservation{jobs.KindName, name, "a backup named " + name + " is already being created"})
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
	Clean             *bool   `json:"clean"`
	TargetDatabase    *string `json:"target_database"`
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
	if target != "" && !configs.ValidIdentifier(target) {
		return badRequest("target_database %q is not a valid identifier (letters, digits, _ and $, at most 63)", truncate(target, 64))
	}
	from := ""
	if req.DownloadFromMinio != nil {
		from = "local"
		if *req.DownloadFromMinio {
			if !a.d.Backups.HasStore("minio") {
				return badRequest("download_from_minio is true but no MinIO is configured (MINIO_ENDPOINT)")
			}
			from = "minio"
		}
	}
	var fromList []string
	if from != "" {
		fromList = []string{from}
	}
	if _, _, err := a.d.Backups.Find(c.Request().Context(), name, fromList); err != nil {
		return err
	}
	if target == "" {
		target = a.d.Backups.DefaultDatabase()
	}
	task, err := jobs.NewRestoreTask(jobs.RestorePayload{BackupName: name, From: from, TargetDatabase: target, Clean: req.Clean != nil && *req.Clean}, a.d.TaskOptions)
	if err != nil {
		return err
	}
	info, err := a.enqueue(c, task, reservation{jobs.KindRestore, target, "a restore into database " + target + " is already queued or running"})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, taskResponse{TaskID: info.ID, StatusURL: statusURL(info.ID)})
}

// storesFromQuery reads two include/delete flags; both default to true,
// and MinIO is left out when it is not configured.
func (a *API) storesFromQuery(c echo.Context, localParam, minioParam string) ([]string, error) {
	local, err := queryBool(c, localParam)
	if err != nil {
		return nil, err
	}
	mio, err := queryBool(c, minioParam)
	if err != nil {
		return nil, err
	}
	var stores []string
	if local == nil || *local {
		stores = append(stores, "local")
	}
	if mio != nil && *mio && !a.d.Backups.HasStore("minio") {
		return nil, badRequest("%s is true but no MinIO is configured (MINIO_ENDPOINT)", minioParam)
	}
	if (mio == nil || *mio) && a.d.Backups.HasStore("minio") {
		stores = append(stores, "minio")
	}
	if len(stores) == 0 {
		return nil, badRequest("%s and %s are both false: nothing to do", localParam, minioParam)
	}
	return stores, nil
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
	stores, err := a.storesFromQuery(c, "include_local", "include_minio")
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

func (a *API) deleteBackup(c echo.Context) error {
	name := c.Param("name")
	if err := engine.ValidateName(name); err != nil {
		return err
	}
	stores, err := a.storesFromQuery(c, "delete_local", "delete_minio")
	if err != nil {
		return err
	}
	if _, _, err := a.d.Backups.Find(c.Request().Context(), name, stores); err != nil {
		return err
	}
	task, err := jobs.NewDeleteTask(jobs.DeletePayload{BackupName: name, Stores: stores}, a.d.TaskOptions)
	if err != nil {
		return err
	}
	info, err := a.enqueue(c, task)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, taskResponse{TaskID: info.ID, StatusURL: statusURL(info.ID)})
}

// verifyBackup enqueues a verify task: the archive is read back in full,
// its checksum compared with the manifest and its table of contents read
// by pg_restore --list.
func (a *API) verifyBackup(c echo.Context) error {
	name := c.Param("name")
	if err := engine.ValidateName(name); err != nil {
		return err
	}
	from := ""
	if v := queryString(c, "from"); v != nil && *v != "" {
		if !a.d.Backups.HasStore(*v) {
			return badRequest("from: store %q is not configured", truncate(*v, 20))
		}
		from = *v
	}
	var fromList []string
	if from != "" {
		fromList = []string{from}
	}
	if _, _, err := a.d.Backups.Find(c.Request().Context(), name, fromList); err != nil {
		return err
	}
	task, err := jobs.NewVerifyTask(jobs.VerifyPayload{BackupName: name, From: from}, a.d.TaskOptions)
	if err != nil {
		return err
	}
	info, err := a.enqueue(c, task)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, taskResponse{TaskID: info.ID, StatusURL: statusURL(info.ID)})
}

func statusURL(id string) string { return "/api/admin/tasks/" + id }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
