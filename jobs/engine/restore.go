package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// RestoreRequest asks for one restore.
type RestoreRequest struct {
	Name string
	// From is the store to read; empty means the first that holds it, in
	// configured order (local before MinIO).
	From string
	// TargetDatabase defaults to the configured database. It is created
	// when missing.
	TargetDatabase string
	// Clean drops the objects the archive contains before recreating them
	// (pg_restore --clean --if-exists). For plain SQL archives, which
	// carry no object list, it drops every user schema of the target first.
	Clean    bool
	Progress ProgressFunc
}

// wipeSchemasSQL empties a database for a clean restore of a plain dump.
// It runs in the same transaction as the dump itself, so a failed restore
// rolls the drop back too.
const wipeSchemasSQL = `DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT nspname FROM pg_namespace
           WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'
  LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
  END LOOP;
END $$;
CREATE SCHEMA public;`

// Restore fetches a backup, verifies it against its manifest, then restores
// it. The archive is checked in full before the target is touched: a
// mismatch changes nothing. Custom, tar and plain archives restore in one
// transaction, so a failure leaves the target as it was; a database created
// for the restore is dropped again on failure.
func (e *Engine) Restore(ctx context.Context, req RestoreRequest) (*Manifest, error) {
	if err := ValidateName(req.Name); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	target := req.TargetDatabase
	if target == "" {
		target = e.conn.Database
	}
	if !pgtool.ValidIdentifier(target) {
		return nil, fmt.Errorf("restore %s: %w: target database %q is not a valid identifier", req.Name, ErrInvalid, target)
	}
	var from []string
	if req.From != "" {
		from = []string{req.From}
	}
	m, where, err := e.Find(ctx, req.Name, from)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	s, _ := e.pick(where[:1])
	log := e.log.WithFields(logrus.Fields{"backup_name": req.Name, "database": target, "format": m.Format, "store": where[0]})
	started := time.Now()

	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-restore-*")
	if err != nil {
		return nil, fmt.Errorf("restore %s: work dir: %w", req.Name, err)
	}
	defer os.RemoveAll(tmp)
	archive, err := e.materialize(ctx, s[0], m, tmp, req.Progress)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", req.Name, err)
	}

	serverNum, err := pgtool.ServerVersion(ctx, e.conn.WithDatabase("postgres"))
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", req.Name, err)
	}
	tools, err := e.finder.Find(ctx, serverNum)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", req.Name, err)
	}
	exists, err := pgtool.DatabaseExists(ctx, e.conn, target)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", req.Name, err)
	}
	if !exists {
		if err := pgtool.CreateDatabase(ctx, e.conn, target); err != nil {
			return nil, fmt.Errorf("restore %s: %w", req.Name, err)
		}
		log.Info("created target database")
	}

	report(req.Progress, Progress{Phase: "restoring", Bytes: m.SizeBytes})
	if err := e.runRestore(ctx, tools, e.conn.WithDatabase(target), m.Format, archive, req.Clean); err != nil {
		if !exists {
			// Leave no half-restored database behind that looks like a result.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			if derr := pgtool.DropDatabase(cctx, e.conn, target); derr != nil {
				log.WithError(derr).Warn("could not drop the database created for a failed restore")
			}
			cancel()
		}
		return nil, fmt.Errorf("restore %s into %s: %w", req.Name, target, err)
	}
	log.WithFields(logrus.Fields{"size_bytes": m.SizeBytes, "clean": req.Clean,
		"duration_ms": time.Since(started).Milliseconds()}).Info("restore complete")
	report(req.Progress, Progress{Phase: "done", Bytes: m.SizeBytes})
	return m, nil
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
	if !m.Format.spec().toDir {
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
	err = extractTar(af, dir)
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
	d := newDigestReader(rc, "downloading", progress)
	if _, err := io.Copy(f, decode(d)); err != nil {
		return fmt.Errorf("fetch %s from %s: %w", m.ArchiveKey, s.Name(), err)
	}
	if d.Size() != m.SizeBytes || d.Sum() != m.SHA256 {
		return fmt.Errorf("%w: %s in %s is %d bytes with sha256 %s, manifest says %d bytes with sha256 %s",
			ErrChecksumMismatch, m.ArchiveKey, s.Name(), d.Size(), d.Sum(), m.SizeBytes, m.SHA256)
	}
	return nil
}

// runRestore restores the materialized archive at path into conn's database.
func (e *Engine) runRestore(ctx context.Context, tools pgtool.Tools, conn pgtool.Conn, f Format, path string, clean bool) error {
	spec := f.spec()
	if spec.psql {
		args := []string{"--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction", "--dbname=" + conn.Database}
		if clean {
			args = append(args, "--command="+wipeSchemasSQL)
		}
		args = append(args, "--file="+path)
		return tools.Command(ctx, conn, "psql", args...).Run()
	}
	args := []string{"--no-password", "--exit-on-error", "--dbname=" + conn.Database, "--format=" + spec.flag}
	if clean {
		args = append(args, "--clean", "--if-exists")
	}
	if spec.oneTransaction {
		args = append(args, "--single-transaction")
	}
	if spec.parallel {
		args = append(args, "--jobs="+strconv.Itoa(e.jobs))
	}
	return tools.Command(ctx, conn, "pg_restore", append(args, path)...).Run()
}

// Verify re-reads a backup from one store (the first holding it when from
// is empty), checks size and checksum against the manifest, and, for
// archive formats, that pg_restore can read its table of contents.
func (e *Engine) Verify(ctx context.Context, name, from string) (*Manifest, error) {
	var stores []string
	if from != "" {
		stores = []string{from}
	}
	m, where, err := e.Find(ctx, name, stores)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	s, _ := e.pick(where[:1])
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-verify-*")
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	path, err := e.materialize(ctx, s[0], m, tmp, nil)
	if err != nil {
		return m, fmt.Errorf("verify %s: %w", name, err)
	}
	spec := m.Format.spec()
	if !spec.listable {
		return m, nil
	}
	tools, err := e.finder.Newest(ctx)
	if err != nil {
		return m, fmt.Errorf("verify %s: %w", name, err)
	}
	cmd := tools.Command(ctx, e.conn, "pg_restore", "--list", "--format="+spec.flag, path)
	if err := cmd.Run(); err != nil {
		return m, fmt.Errorf("verify %s: %w: %w", name, ErrUnreadable, err)
	}
	return m, nil
}
