package handlers

import (
	"regexp"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// bucketNameRe is S3's rule for bucket names.
var bucketNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

type bucketBackupRequest struct {
	Bucket     *string  `json:"bucket"`
	BackupName *string  `json:"backup_name"`
	Prefix     *string  `json:"prefix"`
	Stores     []string `json:"stores"`
}

// bucketBackup enqueues a backup of a MinIO bucket (or of a prefix of it).
func (a *API) bucketBackup(c echo.Context) error {
	var req bucketBackupRequest
	if err := decodeJSON(c, a.d.BodyLimit, &req); err != nil {
		return err
	}
	bucket := deref(req.Bucket)
	if !bucketNameRe.MatchString(bucket) {
		return badRequest("bucket %q is not a valid bucket name", truncate(bucket, 64))
	}
	if a.d.Buckets == nil {
		return badRequest("no MinIO is configured to read buckets from (SOURCE_MINIO_ENDPOINT or MINIO_ENDPOINT)")
	}
	if _, err := a.d.Buckets.Source(c.Request().Context(), bucket); err != nil {
		return err
	}
	stores := a.d.Backups.StoreNames()
	if req.Stores != nil {
		var err error
		if stores, err = a.checkStores("stores", req.Stores); err != nil {
			return err
		}
	}
	name := deref(req.BackupName)
	if name == "" {
		name = "bucket_" + bucket + "_" + time.Now().UTC().Format("20060102_150405")
	}
	return a.acceptedNamed(c, name, tasks.BucketBackupPayload{BackupName: name, Bucket: bucket, Prefix: deref(req.Prefix), Stores: stores})
}

type bucketRestoreRequest struct {
	BackupName   *string `json:"backup_name"`
	TargetBucket *string `json:"target_bucket"`
	Overwrite    *bool   `json:"overwrite"`
	From         *string `json:"from"`
}

// bucketRestore enqueues the restore of a bucket backup into a bucket
// (its source bucket by default), created when missing.
func (a *API) bucketRestore(c echo.Context) error {
	var req bucketRestoreRequest
	if err := decodeJSON(c, a.d.BodyLimit, &req); err != nil {
		return err
	}
	name := deref(req.BackupName)
	backupName, err := engine.ParseName(name)
	if err != nil {
		return err
	}
	c.Set(auditBackup, name)
	if a.d.Buckets == nil {
		return badRequest("no MinIO is configured to restore buckets into (SOURCE_MINIO_ENDPOINT or MINIO_ENDPOINT)")
	}
	from, err := a.readFrom(req.From, nil)
	if err != nil {
		return err
	}
	m, _, err := a.d.Backups.Find(c.Request().Context(), backupName, listOf(from))
	if err != nil {
		return err
	}
	if m.Content != engine.ContentBucket {
		return badRequest("backup %s is a database backup; restore it with POST /api/admin/backup/restore", name)
	}
	target := deref(req.TargetBucket)
	if target == "" {
		target = m.SourceBucket
	}
	if !bucketNameRe.MatchString(target) {
		return badRequest("target_bucket %q is not a valid bucket name", truncate(target, 64))
	}
	c.Set(auditTarget, target)
	if err := a.d.Buckets.Check(target); err != nil {
		return err
	}
	return a.accepted(c, tasks.BucketRestorePayload{BackupName: name, From: from, TargetBucket: target, Overwrite: isTrue(req.Overwrite)},
		reservation{tasks.ScopeRestore, "bucket:" + target, "a restore into bucket " + target + " is already queued or running"})
}
