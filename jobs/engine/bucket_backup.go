package engine

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/store"
)

// Tar PAX records that carry what a restore needs besides key and content.
const (
	paxETag        = "PGBACKUP.etag"
	paxContentType = "PGBACKUP.content-type"
	paxMetaPrefix  = "PGBACKUP.meta."
)

// ErrBucketRefused is a bucket task naming a bucket it may not read or
// write: the backup store's own, or one the deployment's allowlist does
// not name. It is an ErrInvalid: retrying cannot help.
var ErrBucketRefused = fmt.Errorf("%w: bucket refused", ErrInvalid)

// BucketBackupRequest asks for one bucket backup.
type BucketBackupRequest struct {
	Name   Name
	Source *store.Bucket
	Prefix string
	// Stores to write to; every configured store when empty.
	Stores []string
	// Target and Scheduled are recorded in the manifest (see Manifest).
	Target    string
	Scheduled bool
	TaskID    string
	Progress  ProgressFunc
}

// BucketBackup streams every object of the source bucket (under Prefix)
// into one tar archive, compressed and encrypted like database archives,
// into the stores. Each object is read with one GET, so an object that
// changes during the backup is stored as one of its versions, never a mix
// (store.Bucket.Walk checks the bytes against the version's ETag where it
// is an MD5, and fails with store.ErrObjectChanged, retried, otherwise);
// memory stays bounded by the stream, whatever the count and sizes.
func (e *Engine) BucketBackup(ctx context.Context, req BucketBackupRequest) (*Manifest, error) {
	if err := req.Name.required(); err != nil {
		return nil, fmt.Errorf("bucket backup: %w", err)
	}
	targets, err := e.pick(req.Stores)
	if err != nil {
		return nil, fmt.Errorf("bucket backup %s: %w", req.Name, err)
	}
	if done, err := e.claimName(ctx, "bucket backup", req.Name, req.TaskID, e.log.WithField("backup_name", req.Name)); done != nil || err != nil {
		return done, err
	}
	m := e.manifestFor(req.Name, targets, req.TaskID, req.Target, req.Scheduled)
	m.Content, m.SourceBucket, m.SourcePrefix = ContentBucket, req.Source.Name(), req.Prefix
	m.ArchiveKey = bucketArchiveKey(req.Name, e.codec, e.enc.encrypts())
	src, stop, counted := walkBucket(ctx, req.Source, req.Prefix)
	digest, err := e.putStream(ctx, targets, m.ArchiveKey, src, stop, "uploading", req.Progress)
	if err != nil {
		return nil, fmt.Errorf("bucket backup %s: %w", req.Name, err)
	}
	m.SizeBytes, m.SHA256, m.ChunkSums, m.FinishedAt = digest.Size(), digest.Sum(), digest.Sums(), time.Now().UTC()
	m.Objects, m.ObjectBytes = counted.objects.Load(), counted.bytes.Load()
	if err := e.publish(ctx, targets, m); err != nil {
		return nil, fmt.Errorf("bucket backup %s: %w", req.Name, err)
	}
	e.log.WithFields(logrus.Fields{"backup_name": m.Name, "bucket": m.SourceBucket, "objects": m.Objects,
		"bytes": m.ObjectBytes}).Info("bucket backup complete")
	return m, nil
}

// bucketCount counts what a bucket walk stored.
type bucketCount struct {
	objects, bytes atomic.Int64
}

// walkBucket is the dump stage of a bucket backup: it streams every object
// under prefix as one tar, with what a restore needs besides key and
// content in PAX records. stop ends the walk once the stream is no longer
// read; the counts are final after stop.
func walkBucket(ctx context.Context, source *store.Bucket, prefix string) (io.Reader, func(), *bucketCount) {
	var counted bucketCount
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tw := tar.NewWriter(pw)
		err := source.Walk(ctx, prefix, func(o store.BucketObject, r io.Reader) error {
			pax := map[string]string{paxETag: o.ETag, paxContentType: o.ContentType}
			for k, v := range o.UserMetadata {
				pax[paxMetaPrefix+k] = v
			}
			hdr := &tar.Header{Name: o.Key, Size: o.Size, Mode: 0o644, ModTime: o.LastModified,
				Typeflag: tar.TypeReg, Format: tar.FormatPAX, PAXRecords: pax}
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("tar %s: %w", o.Key, err)
			}
			n, err := io.Copy(tw, r)
			if err != nil {
				return fmt.Errorf("read %s: %w", o.Key, err)
			}
			counted.objects.Add(1)
			counted.bytes.Add(n)
			return nil
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, func() {
		_ = pr.CloseWithError(errStopped)
		<-done
	}, &counted
}
