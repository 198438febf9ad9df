package engine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/store"
)

// KindBucket marks the manifest of a bucket backup: every object of an S3
// bucket (or of a prefix of it) in one tar archive.
const KindBucket = "bucket"

// Tar PAX records that carry what a restore needs besides key and content.
const (
	paxETag        = "PGBACKUP.etag"
	paxContentType = "PGBACKUP.content-type"
	paxMetaPrefix  = "PGBACKUP.meta."
)

// bucketArchiveKey is a bucket backup's key; '+' never appears in backup
// names, so it cannot be a database backup's key.
func bucketArchiveKey(name string, c Codec, encrypted bool) string {
	key := Prefix + name + "+bucket.tar" + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}

// BucketBackupRequest asks for one bucket backup.
type BucketBackupRequest struct {
	Name   string
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
// changes during the backup is stored as one of its versions, never a mix;
// memory stays bounded by the stream, whatever the count and sizes.
func (e *Engine) BucketBackup(ctx context.Context, req BucketBackupRequest) (*Manifest, error) {
	if err := ValidateName(req.Name); err != nil {
		return nil, fmt.Errorf("bucket backup: %w", err)
	}
	targets, err := e.pick(req.Stores)
	if err != nil {
		return nil, fmt.Errorf("bucket backup %s: %w", req.Name, err)
	}
	if existing, where, err := e.Find(ctx, req.Name, nil); err == nil {
		done, err := resumable(req.Name, req.TaskID, existing, where, e.log.WithField("backup_name", req.Name))
		if err != nil {
			return nil, err
		}
		if done {
			return existing, nil
		}
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("bucket backup %s: %w", req.Name, err)
	}
	started := time.Now().UTC()
	var objects, objectBytes atomic.Int64
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tw := tar.NewWriter(pw)
		err := req.Source.Walk(ctx, req.Prefix, func(o store.BucketObject, r io.Reader) error {
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
			objects.Add(1)
			objectBytes.Add(n)
			return nil
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	key := bucketArchiveKey(req.Name, e.codec, e.enc.encrypts())
	encoded, stopEncode := e.codec.encodeStream(pr)
	encrypted, stopEncrypt := e.enc.encryptStream(encoded)
	digest := newDigestReader(encrypted, "uploading", req.Progress)
	err = putAll(ctx, targets, key, digest)
	stopEncrypt()
	stopEncode()
	_ = pr.CloseWithError(errStopped)
	<-done
	if err != nil {
		e.removeQuietly(targets, key)
		return nil, fmt.Errorf("bucket backup %s: %w", req.Name, err)
	}
	m := &Manifest{Name: req.Name, Kind: KindBucket, ArchiveKey: key, SizeBytes: digest.Size(), SHA256: digest.Sum(),
		StartedAt: started, FinishedAt: time.Now().UTC(), Stores: names(targets), TaskID: req.TaskID,
		Codec: e.codec.String(), SourceBucket: req.Source.Name(), SourcePrefix: req.Prefix,
		Objects: objects.Load(), ObjectBytes: objectBytes.Load(), Target: req.Target, Scheduled: req.Scheduled}
	if e.enc.encrypts() {
		m.Encrypted, m.Recipients = true, e.enc.fingerprints
	}
	if err := e.publish(ctx, targets, m); err != nil {
		return nil, fmt.Errorf("bucket backup %s: %w", req.Name, err)
	}
	e.log.WithFields(logrus.Fields{"backup_name": m.Name, "bucket": m.SourceBucket, "objects": m.Objects,
		"bytes": m.ObjectBytes}).Info("bucket backup complete")
	return m, nil
}

// BucketRestoreRequest asks for one bucket restore.
type BucketRestoreRequest struct {
	Name string
	From string
	// Target is the bucket to write to (created when missing by the caller).
	Target *store.Bucket
	// Overwrite replaces objects the target already has; otherwise they are
	// kept and counted as skipped.
	Overwrite     bool
	AllowUnsigned bool
	Progress      ProgressFunc
}

// BucketRestoreResult says what a bucket restore did.
type BucketRestoreResult struct {
	BackupName   string `json:"backup_name"`
	TargetBucket string `json:"target_bucket"`
	Restored     int64  `json:"restored"`
	Skipped      int64  `json:"skipped"`
	Bytes        int64  `json:"bytes"`
}

// BucketRestore restores every object of a bucket backup, with its key,
// content type and user metadata. The archive is checked against its
// manifest (signature, SHA-256) into WORK_DIR before the first object is
// written, so a damaged backup writes nothing.
func (e *Engine) BucketRestore(ctx context.Context, req BucketRestoreRequest) (*BucketRestoreResult, error) {
	var from []string
	if req.From != "" {
		from = []string{req.From}
	}
	m, where, err := e.Find(ctx, req.Name, from)
	if err != nil {
		return nil, fmt.Errorf("bucket restore: %w", err)
	}
	if m.Kind != KindBucket {
		return nil, fmt.Errorf("bucket restore %s: %w: not a bucket backup", req.Name, ErrInvalid)
	}
	if err := e.checkSignature(m, req.AllowUnsigned); err != nil {
		return nil, fmt.Errorf("bucket restore %s: %w", req.Name, err)
	}
	s, _ := e.pick(where[:1])
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-bucket-*")
	if err != nil {
		return nil, fmt.Errorf("bucket restore %s: work dir: %w", req.Name, err)
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, "archive.tar")
	if err := e.fetchVerified(ctx, s[0], m, path, req.Progress); err != nil {
		return nil, fmt.Errorf("bucket restore %s: %w", req.Name, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := &BucketRestoreResult{BackupName: m.Name, TargetBucket: req.Target.Name()}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("bucket restore %s: %w: %w", req.Name, ErrInvalidArchive, err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Name == "" || isSparse(hdr) {
			return res, fmt.Errorf("bucket restore %s: %w: entry %q", req.Name, ErrInvalidArchive, truncateString(hdr.Name, 60))
		}
		if !req.Overwrite {
			exists, err := req.Target.Exists(ctx, hdr.Name)
			if err != nil {
				return res, fmt.Errorf("bucket restore %s: %w", req.Name, err)
			}
			if exists {
				res.Skipped++
				continue
			}
		}
		o := store.BucketObject{Key: hdr.Name, Size: hdr.Size, ContentType: hdr.PAXRecords[paxContentType],
			UserMetadata: map[string]string{}}
		for k, v := range hdr.PAXRecords {
			if mk, ok := strings.CutPrefix(k, paxMetaPrefix); ok {
				o.UserMetadata[mk] = v
			}
		}
		if err := req.Target.Put(ctx, o, io.LimitReader(tr, hdr.Size)); err != nil {
			return res, fmt.Errorf("bucket restore %s: %w", req.Name, err)
		}
		res.Restored++
		res.Bytes += hdr.Size
		report(req.Progress, Progress{Phase: "restoring", Bytes: res.Bytes})
	}
	return res, nil
}
