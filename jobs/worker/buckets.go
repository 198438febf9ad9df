package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
)

// Buckets opens the buckets that bucket backups read and restores write.
// Every method refuses, with an engine.ErrBucketRefused, the backup
// store's own bucket and any bucket the deployment does not allow, so a
// task queued before the rule changed, or by someone who can write Redis,
// is refused here too.
type Buckets interface {
	// Source opens an existing bucket to back up.
	Source(ctx context.Context, bucket string) (*store.Bucket, error)
	// Destination opens (creating when missing) a bucket to restore into.
	Destination(ctx context.Context, bucket string) (*store.Bucket, error)
	// Check refuses a bucket without opening it.
	Check(bucket string) error
}

// BucketBackupEngine streams buckets into archives (an *engine.Engine).
type BucketBackupEngine interface {
	BucketBackup(ctx context.Context, req engine.BucketBackupRequest) (*engine.Manifest, error)
}

// BucketRestoreEngine writes bucket backups back (an *engine.Engine).
type BucketRestoreEngine interface {
	BucketRestore(ctx context.Context, req engine.BucketRestoreRequest) (*engine.BucketRestoreResult, error)
}

// errNoBucketAccess refuses bucket tasks on a worker without MinIO access.
var errNoBucketAccess = fmt.Errorf("%w: this worker has no bucket access", engine.ErrInvalid)

// BucketBackupWorker runs tasks.TypeBucketBackup: it streams a MinIO
// bucket into one archive in the stores.
type BucketBackupWorker struct {
	Engine BucketBackupEngine
	// Buckets is nil on a worker without MinIO: it refuses bucket tasks.
	Buckets Buckets
	Targets *policy.TargetSet
	Ledger  *Ledger
}

func (w *BucketBackupWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.BucketBackupPayload, *engine.Manifest](rt, w)
}

// resolve names a scheduled backup after its task ID, as BackupWorker does.
func (w *BucketBackupWorker) resolve(_ context.Context, p tasks.BucketBackupPayload, taskID string) (tasks.BucketBackupPayload, error) {
	if p.BackupName == "" && p.Scheduled {
		p.BackupName = taskID
	}
	return p, nil
}

func (w *BucketBackupWorker) logFields(p tasks.BucketBackupPayload) logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "bucket": p.Bucket, "prefix": p.Prefix}
}

func (w *BucketBackupWorker) failureEvent(p tasks.BucketBackupPayload) alert.Event {
	return alert.Event{Event: alert.EventBackupFailed, Target: p.Target, BackupName: p.BackupName}
}

// Work backs up the bucket.
func (w *BucketBackupWorker) Work(ctx context.Context, p tasks.BucketBackupPayload) (*engine.Manifest, error) {
	if w.Buckets == nil {
		return nil, fmt.Errorf("bucket backup: %w", errNoBucketAccess)
	}
	src, err := w.Buckets.Source(ctx, p.Bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket backup: %w", err)
	}
	name, err := parseBackupName("bucket backup", p.BackupName)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	m, err := w.Engine.BucketBackup(ctx, engine.BucketBackupRequest{Name: name, Source: src, Prefix: p.Prefix,
		Stores: p.Stores, Target: p.Target, Scheduled: p.Scheduled, TaskID: taskIDOf(ctx), Progress: progressOf(ctx)})
	bg := context.WithoutCancel(ctx)
	if err != nil {
		if finalAttempt(ctx, err) {
			w.Ledger.backupFailed(bg, p.Target, p.BackupName)
		}
		return nil, err
	}
	w.Ledger.backupDone(bg, p.Target, m.Name.String(), m.FinishedAt, time.Since(start), m.SizeBytes)
	w.Ledger.pruneAfter(bg, w.Targets, p.Target, p.Scheduled)
	return m.Summary(), nil // without chunk sums, as a backup's result
}

// BucketRestoreWorker runs tasks.TypeBucketRestore: it writes a bucket
// backup's objects back.
type BucketRestoreWorker struct {
	Engine BucketRestoreEngine
	// Buckets is nil on a worker without MinIO: it refuses bucket tasks.
	Buckets Buckets
}

func (w *BucketRestoreWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.BucketRestorePayload, *engine.BucketRestoreResult](rt, w)
}

func (w *BucketRestoreWorker) logFields(p tasks.BucketRestorePayload) logrus.Fields {
	return logrus.Fields{"backup_name": p.BackupName, "bucket": p.TargetBucket, "overwrite": p.Overwrite}
}

// Work restores the bucket.
func (w *BucketRestoreWorker) Work(ctx context.Context, p tasks.BucketRestorePayload) (*engine.BucketRestoreResult, error) {
	if w.Buckets == nil {
		return nil, fmt.Errorf("bucket restore: %w", errNoBucketAccess)
	}
	name, err := parseBackupName("bucket restore", p.BackupName)
	if err != nil {
		return nil, err
	}
	dst, err := w.Buckets.Destination(ctx, p.TargetBucket)
	if err != nil {
		return nil, fmt.Errorf("bucket restore: %w", err)
	}
	return w.Engine.BucketRestore(ctx, engine.BucketRestoreRequest{Name: name, From: p.From, Destination: dst,
		Overwrite: p.Overwrite, Progress: progressOf(ctx)})
}
