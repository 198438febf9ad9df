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

	"github.com/autograph/pgbackup/store"
)

// BucketRestoreRequest asks for one bucket restore.
type BucketRestoreRequest struct {
	Name Name
	From string
	// Destination is the bucket to write to (created when missing by the
	// caller).
	Destination *store.Bucket
	// Overwrite replaces objects the destination already has; otherwise they are
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
	if m.Content != ContentBucket {
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
	res := &BucketRestoreResult{BackupName: m.Name.String(), TargetBucket: req.Destination.Name()}
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
			exists, err := req.Destination.Exists(ctx, hdr.Name)
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
		if err := req.Destination.Put(ctx, o, io.LimitReader(tr, hdr.Size)); err != nil {
			return res, fmt.Errorf("bucket restore %s: %w", req.Name, err)
		}
		res.Restored++
		res.Bytes += hdr.Size
		report(req.Progress, Progress{Phase: "restoring", Bytes: res.Bytes})
	}
	return res, nil
}
