package handlers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
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
	// IncludeGlobals also stores the server's roles (pg_dumpall
	// --globals-only); a target may ask for it too.
	IncludeGlobals *bool `json:"include_globals"`
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

	var target *policy.Target
	if name := deref(req.Target); name != "" {
		t, ok := a.d.Targets.Get(name)
		if !ok {
			return fmt.Errorf("%w: target %q is not configured", errTargetNotFound, truncate(name, 40))
		}
		target = &t
		if t.Source == policy.SourceBucket {
			return badRequest("target %s backs up a bucket; use POST /api/admin/buckets/backup", t.Name)
		}
		if req.Database == nil {
			req.Database = &t.Database
		} else if *req.Database != t.Database {
			return badRequest("database %q is not target %s's database %s", truncate(*req.Database, 64), t.Name, t.Database)
		}
		if req.Format == nil {
			f := t.Format.String()
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
	// "*" is a whole-server backup: every database that accepts connections.
	// Parsed here so a bad name is the client's 400; the payload carries the
	// string, which the worker parses again (a payload is input too).
	if _, _, err := engine.ParseBackupDatabase(db); err != nil {
		return badRequest("database %q is not a valid identifier (letters, digits, _ and $, at most 63), nor * for every database", truncate(db, 64))
	}
	stores, err := a.createStores(c, req.Stores, req.UploadToMinio)
	if err != nil {
		return err
	}
	targetName, globals := "", isTrue(req.IncludeGlobals)
	if target != nil {
		targetName = target.Name
		if req.IncludeGlobals == nil {
			globals = target.IncludeGlobals
		}
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
		parsed, err := engine.ParseName(name)
		if err != nil {
			return err
		}
		taken, err := a.nameTaken(ctx, parsed)
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("%w: backup %s already exists", engine.ErrExists, name)
		}
	}

	info, err := a.enqueuePayload(c, tasks.BackupPayload{BackupName: name, Format: format.String(), Database: db, Stores: stores,
		Target: targetName, IncludeGlobals: globals}, reservation{tasks.ScopeName, name, "a backup named " + name + " is already being created"})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, createResponse{TaskID: info.ID, BackupName: name, StatusURL: statusURL(info.ID)})
}

// nameTaken is create's existence check: the name index when it is sure,
// the stores otherwise. (The name reservation then keeps two creates of
// one name apart, and the worker checks the stores again before it dumps.)
func (a *API) nameTaken(ctx context.Context, name engine.Name) (bool, error) {
	if a.d.Names != nil {
		taken, sure, err := a.d.Names.Taken(ctx, name.String())
		if err != nil {
			return false, fmt.Errorf("%w: %w", errQueueUnavailable, err)
		}
		if sure {
			return taken, nil
		}
	}
	_, _, err := a.d.Backups.Find(ctx, name, nil)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// freeGeneratedName returns autograph_backup_{YYYYMMDD_HHMMSS}, with a
// counter appended if a backup of that second already exists.
func (a *API) freeGeneratedName(c echo.Context) (string, error) {
	base := "autograph_backup_" + time.Now().UTC().Format("20060102_150405")
	name := base
	for i := 2; i < 100; i++ {
		parsed, err := engine.ParseName(name)
		if err != nil {
			return "", err
		}
		taken, err := a.nameTaken(c.Request().Context(), parsed)
		if err != nil {
			return "", err
		}
		if !taken {
			return name, nil
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
	RestoreGlobals    *bool   `json:"restore_globals"`
	// Databases chooses databases of a whole-server backup.
	Databases []string `json:"databases"`
	// Target restores into that target's server, and by default its
	// database.
	Target *string `json:"target"`
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
	if err := a.checkAllowUnsigned(req.AllowUnsigned); err != nil {
		return err
	}
	name := deref(req.BackupName)
	if name == "" {
		return badRequest("backup_name is required")
	}
	backupName, err := engine.ParseName(name)
	if err != nil {
		return err
	}
	target := deref(req.TargetDatabase)
	c.Set(auditBackup, name)
	c.Set(auditTarget, target)
	if target != "" {
		if _, err := engine.ParseDatabase(target); err != nil {
			return badRequest("target_database %q is not a valid identifier (letters, digits, _ and $, at most 63)", truncate(target, 64))
		}
	}
	from, err := a.readFrom(req.From, req.DownloadFromMinio)
	if err != nil {
		return err
	}
	m, _, err := a.d.Backups.Find(c.Request().Context(), backupName, listOf(from))
	if err != nil {
		return err
	}
	if m.Content == engine.ContentBucket {
		return badRequest("backup %s is a bucket backup; restore it with POST /api/admin/buckets/restore", name)
	}
	// The server to restore into: the named target's, else the one the
	// backup came from when its target has a server of its own.
	tname := deref(req.Target)
	if tname != "" {
		t, ok := a.d.Targets.Get(tname)
		if !ok {
			return fmt.Errorf("%w: target %q is not configured", errTargetNotFound, truncate(tname, 40))
		}
		if t.Source == policy.SourceBucket {
			return badRequest("target %s backs up a bucket; restore its backups with POST /api/admin/buckets/restore", t.Name)
		}
		if target == "" && t.Database != engine.AllDatabases && m.Content != engine.ContentServer {
			target = t.Database
		}
	} else if t, ok := a.d.Targets.Get(m.Target); ok && t.Server != nil {
		tname = t.Name
	}
	if m.Content == engine.ContentServer || req.Databases != nil {
		return a.restoreServer(c, req, m, from, tname)
	}
	if target == "" {
		// The database the backup was taken from: restoring elsewhere by
		// default would overwrite whatever POSTGRES_DB happens to be.
		target = m.Database
	}
	p := tasks.RestorePayload{BackupName: name, From: from, TargetDatabase: target, Target: tname,
		Clean: isTrue(req.Clean), Replace: isTrue(req.Replace), AllowUnsigned: isTrue(req.AllowUnsigned),
		RestoreGlobals: isTrue(req.RestoreGlobals)}
	if p.RestoreGlobals && m.Globals == nil {
		return badRequest("restore_globals: backup %s was taken without include_globals", name)
	}
	if err := engine.CheckRestoreMode(m.Format, p.Clean, p.Replace); err != nil {
		return err
	}
	c.Set(auditTarget, target)
	if p.AllowUnsigned {
		a.auditLog.WithFields(map[string]any{"backup_name": name, "target": target}).Warn("restore allows an unsigned manifest")
	}
	return a.accepted(c, p, reservation{tasks.ScopeRestore, tasks.RestoreKey(tname, target), "a restore into database " + target + " is already queued or running"})
}

// restoreServer enqueues the restore of a whole-server backup: each
// chosen database (all by default) under its own name, each reserved.
func (a *API) restoreServer(c echo.Context, req restoreRequest, m *engine.Manifest, from, tname string) error {
	if m.Content != engine.ContentServer {
		return badRequest("databases: backup %s holds the one database %s; use target_database", m.Name, m.Database)
	}
	if req.TargetDatabase != nil || isTrue(req.Replace) {
		return badRequest("backup %s is a whole-server backup: each database is restored under its own name; choose them with databases, not target_database or replace", m.Name)
	}
	if req.Databases != nil && len(req.Databases) == 0 {
		return badRequest("databases: empty; leave it out to restore every database of backup %s", m.Name)
	}
	held := make(map[string]bool, len(m.Databases))
	for _, d := range m.Databases {
		held[d.Database] = true
	}
	dbs, seen := req.Databases, map[string]bool{}
	for _, d := range dbs {
		if !held[d] {
			return fmt.Errorf("%w: backup %s holds no database %q", engine.ErrNotFound, m.Name, truncate(d, 64))
		}
		if seen[d] {
			return badRequest("databases: %s is named twice", d)
		}
		seen[d] = true
	}
	if dbs == nil {
		for _, d := range m.Databases {
			dbs = append(dbs, d.Database)
		}
	}
	p := tasks.RestorePayload{BackupName: m.Name.String(), From: from, Databases: dbs, Target: tname,
		Clean: isTrue(req.Clean), AllowUnsigned: isTrue(req.AllowUnsigned), RestoreGlobals: isTrue(req.RestoreGlobals)}
	if p.RestoreGlobals && m.Globals == nil {
		return badRequest("restore_globals: backup %s was taken without include_globals", m.Name)
	}
	if err := engine.CheckRestoreMode(m.Format, p.Clean, false); err != nil {
		return err
	}
	c.Set(auditTarget, strings.Join(dbs, ","))
	res := make([]reservation, 0, len(dbs))
	for _, d := range dbs {
		res = append(res, reservation{tasks.ScopeRestore, tasks.RestoreKey(tname, d), "a restore into database " + d + " is already queued or running"})
	}
	return a.accepted(c, p, res...)
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
	ArchiveKey string    `json:"archive_key"`
	Codec      string    `json:"codec,omitempty"`
	Target     string    `json:"target,omitempty"`
	Scheduled  bool      `json:"scheduled,omitempty"`
	// Signed: the manifest's signature verified with the API's key (never
	// true without one: a signature field alone proves nothing).
	Signed bool `json:"signed,omitempty"`
	// Adopted: taken over from the old manager (see engine.Adopt).
	Adopted bool `json:"adopted,omitempty"`
	// Kind is "bucket" for bucket backups (with the bucket and the number
	// of objects), empty for databases.
	Kind         string `json:"kind,omitempty"`
	SourceBucket string `json:"source_bucket,omitempty"`
	Objects      int64  `json:"objects,omitempty"`
	// Databases are a whole-server backup's (kind "server", database "*").
	Databases []string `json:"databases,omitempty"`
}

// maxListLimit bounds one page of the list.
const maxListLimit = 1000

// listBackups lists complete backups, newest first. Without limit it
// returns them all, as the old service did; with limit it returns a page
// and, when more follow, next_cursor for the next one. database, target
// and since (an RFC 3339 time, or a duration such as 24h meaning that long
// ago) filter the list before it is paged.
func (a *API) listBackups(c echo.Context) error {
	stores, err := a.selectedStores(c, nil, listFlags)
	if err != nil {
		return err
	}
	limit := 0
	if v := c.QueryParam("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxListLimit {
			return badRequest("limit: want a whole number from 1 to %d", maxListLimit)
		}
	}
	var after *listPosition
	if v := c.QueryParam("cursor"); v != "" {
		p, err := decodeCursor(v)
		if err != nil {
			return badRequest("cursor: %v", err)
		}
		after = &p
	}
	var since time.Time
	if v := c.QueryParam("since"); v != "" {
		if since, err = parseSince(v, time.Now()); err != nil {
			return badRequest("since: %v", err)
		}
	}
	database, target := c.QueryParam("database"), c.QueryParam("target")
	var owner *policy.Target
	if target != "" {
		t, ok := a.d.Targets.Get(target)
		if !ok {
			return fmt.Errorf("%w: target %q is not configured", errTargetNotFound, truncate(target, 40))
		}
		owner = &t
	}
	entries, err := a.d.Backups.List(c.Request().Context(), stores)
	if err != nil {
		return err
	}
	out := make([]backupJSON, 0, min(len(entries), max(limit, 16)))
	total := 0
	next := ""
	for _, e := range entries {
		if database != "" && e.Database != database {
			continue
		}
		if owner != nil {
			if owned, _ := owner.Owns(&e.Manifest); !owned {
				continue
			}
		}
		if !since.IsZero() && e.FinishedAt.Before(since) {
			continue
		}
		total++
		pos := listPosition{At: e.FinishedAt, Name: e.Name.String()}
		if after != nil && !pos.after(*after) {
			continue
		}
		if limit > 0 && len(out) == limit {
			if next == "" {
				next = encodeCursor(listPosition{At: out[len(out)-1].CreatedAt, Name: out[len(out)-1].BackupName})
			}
			continue
		}
		out = append(out, backupJSON{
			BackupName: e.Name.String(), Format: e.Format.String(), Database: e.Database,
			SizeBytes: e.SizeBytes, SizeMB: float64(e.SizeBytes*100/(1<<20)) / 100,
			SHA256: e.SHA256, CreatedAt: e.FinishedAt, Locations: e.Locations,
			ArchiveKey: e.ArchiveKey, Codec: e.Codec, Target: e.Target, Scheduled: e.Scheduled, Signed: e.Verified, Adopted: e.Adopted,
			Kind: e.Content, SourceBucket: e.SourceBucket, Objects: e.Objects, Databases: e.DatabaseNames(),
		})
	}
	resp := map[string]any{"backups": out, "count": len(out), "total": total}
	if next != "" {
		resp["next_cursor"] = next
	}
	return c.JSON(http.StatusOK, resp)
}

// listPosition is a place in the list's order: newest first, then by name.
type listPosition struct {
	At   time.Time `json:"t"`
	Name string    `json:"n"`
}

// after reports whether p comes after q in the list's order.
func (p listPosition) after(q listPosition) bool {
	if !p.At.Equal(q.At) {
		return p.At.Before(q.At)
	}
	return p.Name > q.Name
}

func encodeCursor(p listPosition) string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (listPosition, error) {
	var p listPosition
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &p) != nil || p.Name == "" {
		return p, errors.New("not a cursor this API gave")
	}
	return p, nil
}

func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time or a duration such as 24h", truncate(v, 40))
	}
	return t, nil
}

type deleteRequest struct {
	Stores []string `json:"stores"`
}

func (a *API) deleteBackup(c echo.Context) error {
	name := c.Param("name")
	backupName, err := engine.ParseName(name)
	if err != nil {
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
	if _, _, err := a.d.Backups.Find(c.Request().Context(), backupName, stores); err != nil {
		return err
	}
	return a.accepted(c, tasks.DeletePayload{BackupName: name, Stores: stores})
}

// checkAllowUnsigned refuses allow_unsigned when the server is set to
// (REFUSE_UNSIGNED_RESTORES), before anything is read or queued.
func (a *API) checkAllowUnsigned(allow *bool) error {
	if a.d.RefuseUnsigned && isTrue(allow) {
		return engine.ErrUnsignedRefused
	}
	return nil
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
	backupName, err := engine.ParseName(name)
	if err != nil {
		return err
	}
	c.Set(auditBackup, name)
	var req verifyRequest
	if err := decodeJSON(c, a.d.BodyLimit, &req); err != nil {
		return err
	}
	if err := a.checkAllowUnsigned(req.AllowUnsigned); err != nil {
		return err
	}
	if req.From == nil {
		req.From = queryString(c, "from")
	}
	from, err := a.readFrom(req.From, nil)
	if err != nil {
		return err
	}
	if _, _, err := a.d.Backups.Find(c.Request().Context(), backupName, listOf(from)); err != nil {
		return err
	}
	return a.accepted(c, tasks.VerifyPayload{BackupName: name, From: from, AllowUnsigned: isTrue(req.AllowUnsigned)})
}

func isTrue(b *bool) bool { return b != nil && *b }

func statusURL(id string) string { return "/api/admin/tasks/" + id }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
