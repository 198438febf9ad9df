package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/store"
)

// Buckets opens the buckets that bucket backups read and restores write.
type Buckets interface {
	// Source opens an existing bucket to back up; it refuses the backup
	// store's own bucket.
	Source(ctx context.Context, bucket string) (*store.Bucket, error)
	// Target opens (creating when missing) a bucket to restore into.
	Target(ctx context.Context, bucket string) (*store.Bucket, error)
}

// BucketEngine is what bucket tasks need from the engine.
type BucketEngine interface {
	BucketBackup(ctx context.Context, req engine.BucketBackupRequest) (*engine.Manifest, error)
	BucketRestore(ctx context.Context, req engine.BucketRestoreRequest) (*engine.BucketRestoreResult, error)
}

// BucketBackupPayload is the payload of TypeBucketBackup.
type BucketBackupPayload struct {
	BackupName string   `json:"backup_name"`
	Bucket     string   `json:"bucket"`
	Prefix     string   `json:"prefix,omitempty"`
	Stores     []string `json:"stores,omitempty"`
	// Target and Scheduled as for database backups: scheduled bucket
	// backups of a target are named after their slot and pruned.
	Target    string `json:"target,omitempty"`
	Scheduled bool   `json:"scheduled,omitempty"`
}

func (p BucketBackupPayload) resolve(_ context.Context, _ *Worker, taskID string) (BucketBackupPayload, error) {
	if p.BackupName == "" && p.Scheduled {
		p.BackupName = taskID
	}
	return p, nil
}

// Kind implements Payload.
func (BucketBackupPayload) Kind() string { return TypeBucketBackup }

func (p BucketBackupPayload) reservations() []reservation {
	return []reservation{{KindName, p.BackupName}}
}

func (p BucketBackupPayload) logFields() logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "bucket": p.Bucket, "prefix": p.Prefix}
}

func (p BucketBackupPayload) failureEvent() Event {
	return Event{Event: EventBackupFailed, Target: p.Target, BackupName: p.BackupName}
}

func (w *Worker) bucketBackup(ctx context.Context, p BucketBackupPayload) (*engine.Manifest, error) {
	be, ok := w.Engine.(BucketEngine)
	if !ok || w.Buckets == nil {
		return nil, fmt.Errorf("bucket backup: %w: this worker has no bucket access", engine.ErrInvalid)
	}
	src, err := w.Buckets.Source(ctx, p.Bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket backup: %w", err)
	}
	taskID, _ := taskIDOf(ctx)
	start := time.Now()
	name, err := parseBackupName("bucket backup", p.BackupName)
	var m *engine.Manifest
	if err == nil {
		m, err = be.BucketBackup(ctx, engine.BucketBackupRequest{Name: name, Source: src, Prefix: p.Prefix,
			Stores: p.Stores, Target: p.Target, Scheduled: p.Scheduled, TaskID: taskID, Progress: progressOf(ctx)})
	}
	bg := context.WithoutCancel(ctx)
	if err != nil {
		if finalAttempt(ctx, err) {
			w.record(bg, p.Target, OutcomeFailed, p.BackupName, time.Time{}, 0, 0)
		}
		return nil, err
	}
	w.markName(bg, m.Name.String(), true)
	w.record(bg, p.Target, OutcomeSuccess, m.Name.String(), m.FinishedAt, time.Since(start), m.SizeBytes)
	w.afterScheduled(bg, p.Target, p.Scheduled)
	return m, nil
}

// BucketRestorePayload is the payload of TypeBucketRestore.
type BucketRestorePayload struct {
	BackupName   string `json:"backup_name"`
	From         string `json:"from,omitempty"`
	TargetBucket string `json:"target_bucket"`
	Overwrite    bool   `json:"overwrite,omitempty"`
}

// Kind implements Payload.
func (BucketRestorePayload) Kind() string { return TypeBucketRestore }

func (p BucketRestorePayload) logFields() logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "bucket": p.TargetBucket, "overwrite": p.Overwrite}
}

func (w *Worker) bucketRestore(ctx context.Context, p BucketRestorePayload) (*engine.BucketRestoreResult, error) {
	be, ok := w.Engine.(BucketEngine)
	if !ok || w.Buckets == nil {
		return nil, fmt.Errorf("bucket restore: %w: this worker has no bucket access", engine.ErrInvalid)
	}
	dst, err := w.Buckets.Target(ctx, p.TargetBucket)
	if err != nil {
		return nil, fmt.Errorf("bucket restore: %w", err)
	}
	name, err := parseBackupName("bucket restore", p.BackupName)
	if err != nil {
		return nil, err
	}
	return be.BucketRestore(ctx, engine.BucketRestoreRequest{Name: name, From: p.From, Target: dst,
		Overwrite: p.Overwrite, Progress: progressOf(ctx)})
}
