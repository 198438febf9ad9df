package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// withFetched fetches m's archive into a fresh directory of WORK_DIR and
// calls fn with it and the client tools; the directory goes afterwards.
func (e *Engine) withFetched(ctx context.Context, s store.Store, m *Manifest, progress ProgressFunc, fn func(tools pgtool.Tools, archive string) error) error {
	tools, err := e.toolsFor(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-restore-*")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	archive, err := e.materialize(ctx, s, m, tmp, progress)
	if err != nil {
		return err
	}
	report(progress, Progress{Phase: "restoring", Bytes: m.SizeBytes})
	return fn(tools, archive)
}

// materialize fetches a backup's archive into tmp, verified against the
// manifest, and returns the path pg_restore or psql reads: the archive
// file itself, or for formats stored as a tar of a directory, the
// extracted directory (the tar is removed to free its disk space first).
// Restore and verify share it, so both read archives the same way.
func (e *Engine) materialize(ctx context.Context, s store.Store, m *Manifest, tmp string, progress ProgressFunc) (string, error) {
	archive := filepath.Join(tmp, "archive")
	if err := e.fetchVerified(ctx, s, m, archive, progress); err != nil {
		return "", err
	}
	spec := m.Format.spec()
	if spec.psql {
		if err := checkFile(archive, e.checkPlain); err != nil {
			return "", fmt.Errorf("check %s: %w", m.ArchiveKey, err)
		}
	}
	if !spec.toDir {
		return archive, nil
	}
	dir := filepath.Join(tmp, "dir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("extract %s: %w", m.ArchiveKey, err)
	}
	af, err := os.Open(archive)
	if err != nil {
		return "", fmt.Errorf("extract %s: %w", m.ArchiveKey, err)
	}
	// Without sparse entries (refused) a tar's contents are never larger
	// than the tar itself: that is the cap, so a hostile archive cannot
	// fill WORK_DIR.
	var limit int64 = -1
	if fi, err := af.Stat(); err == nil {
		limit = fi.Size()
	}
	err = extractTar(af, dir, limit)
	_ = af.Close()
	if err != nil {
		return "", fmt.Errorf("extract %s: %w", m.ArchiveKey, err)
	}
	_ = os.Remove(archive)
	return dir, nil
}

// fetchVerified copies the archive to path while hashing it and fails with
// ErrChecksumMismatch unless size and SHA-256 match the manifest. The hash
// covers the stored bytes; decode then undoes the stream stage.
func (e *Engine) fetchVerified(ctx context.Context, s store.Store, m *Manifest, path string, progress ProgressFunc) (err error) {
	rc, err := s.Get(ctx, m.ArchiveKey)
	if err != nil {
		return fmt.Errorf("fetch %s from %s: %w", m.ArchiveKey, s.Name(), err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", m.ArchiveKey, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("fetch %s: %w", m.ArchiveKey, cerr)
		}
	}()
	report(progress, Progress{Phase: "downloading"})
	codec, err := parseManifestCodec(m.Codec)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidArchive, m.Name, err)
	}
	// The hash covers the stored bytes; the decoder writes the archive as
	// pg_dump wrote it. Both run in the one pass, so the file on disk is
	// ready the moment the checksum is known.
	d := newDigestReader(rc, "downloading", progress)
	plain, err := e.enc.decrypt(m, d)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", m.ArchiveKey, err)
	}
	dec, err := codec.decoder(plain)
	if err != nil {
		return fmt.Errorf("fetch %s: %w: %w", m.ArchiveKey, errCorrupt, err)
	}
	_, copyErr := io.Copy(f, dec)
	_ = dec.Close()
	if err := checkStored(ctx, s, m, d, copyErr); err != nil {
		return err
	}
	if copyErr != nil {
		// The stored bytes are the ones the manifest names, yet they do not
		// decompress: the archive was bad before it was stored.
		return fmt.Errorf("fetch %s: %w: %w: %w", m.ArchiveKey, ErrUnreadable, errCorrupt, copyErr)
	}
	return nil
}

// checkFile runs check over the file at path.
func checkFile(path string, check func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return check(f)
}
