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
	// Server is the PostgreSQL server to restore into; nil means the
	// configured one.
	Server *pgtool.Conn
	// From is the store to read; empty means the first that holds it, in
	// configured order.
	From string
	// TargetDatabase defaults to the database the backup was taken from
	// (the manifest's). It is created when missing.
	TargetDatabase string
	// Clean drops the objects the archive contains before recreating them
	// (pg_restore --clean --if-exists). Plain SQL archives carry no object
	// list, so for them Clean is refused: use Replace.
	Clean bool
	// Replace restores into a scratch database beside the target, checks
	// it, then swaps it in by renaming; the old target is kept under
	// <target>_replaced_<UTC time>.
	Replace bool
	// AllowUnsigned restores even when the manifest's signature is missing
	// or wrong (only matters when manifests are signed).
	AllowUnsigned bool
	// RestoreGlobals applies the backup's roles and tablespaces first
	// (roles that already exist are left alone).
	RestoreGlobals bool
	// Databases chooses the databases of a whole-server backup to restore
	// (all when empty); each goes into the database of its name.
	Databases []string
	Progress  ProgressFunc
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	Manifest       *Manifest `json:"manifest"`
	TargetDatabase string    `json:"target_database"`
	Clean          bool      `json:"clean"`
	Replace        bool      `json:"replace,omitempty"`
	// ReplacedCopy is the renamed previous target of a replace (empty when
	// there was none); deleting it is the operator's choice.
	ReplacedCopy string `json:"replaced_copy,omitempty"`
	// SwapDowntimeMS is how long the target was unavailable during a
	// replace's swap.
	SwapDowntimeMS int64 `json:"swap_downtime_ms,omitempty"`
	// RowCountsChecked says the restored tables' row counts were compared
	// with the manifest's and matched.
	RowCountsChecked bool `json:"row_counts_checked,omitempty"`
	// GlobalsRestored says the backup's roles were applied first.
	GlobalsRestored bool `json:"globals_restored,omitempty"`
	// Databases are the databases a whole-server restore restored.
	Databases []string `json:"databases,omitempty"`
}

// CheckRestoreMode refuses combinations that could destroy what the
// archive does not contain: a clean restore of a plain archive (which has
// no object list, so cleaning means dropping everything), and clean with
// replace (which restores into a fresh database, so there is nothing to
// clean).
func CheckRestoreMode(f Format, clean, replace bool) error {
	switch {
	case clean && replace:
		return fmt.Errorf("%w: give clean or replace, not both (replace restores into a fresh database)", ErrInvalid)
	case clean && f.spec().psql:
		return fmt.Errorf("%w: a clean restore of a plain archive would drop objects the archive does not contain; "+
			"use \"replace\": true (restore beside the target, check, then swap) instead", ErrInvalid)
	}
	return nil
}

// Restore fetches a backup, verifies it against its manifest (signature,
// size, checksum, and for plain archives that it holds no psql
// meta-command pg_dump would not write), then restores it. Nothing touches
// the target before all of that passed. Custom, tar and plain archives
// restore in one transaction, so a failure leaves the target as it was; a
// database created for the restore is dropped again on failure. With
// Replace the target is not touched at all until the restored copy has
// been checked.
func (e *Engine) Restore(ctx context.Context, req RestoreRequest) (*RestoreResult, error) {
	e = e.on(req.Server)
	if err := ValidateName(req.Name); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if req.TargetDatabase != "" && !pgtool.ValidIdentifier(req.TargetDatabase) {
		return nil, fmt.Errorf("restore %s: %w: target database %q is not a valid identifier", req.Name, ErrInvalid, req.TargetDatabase)
	}
	var from []string
	if req.From != "" {
		from = []string{req.From}
	}
	m, where, err := e.Find(ctx, req.Name, from)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if m.Kind == KindBucket {
		return nil, fmt.Errorf("restore %s: %w: a bucket backup; restore it with POST /api/admin/buckets/restore", req.Name, ErrInvalid)
	}
	if err := e.checkSignature(m, req.AllowUnsigned); err != nil {
		return nil, fmt.Errorf("restore %s: %w", req.Name, err)
	}
	target := req.TargetDatabase
	if target == "" {
		target = m.Database
	}
	if err := CheckRestoreMode(m.Format, req.Clean, req.Replace); err != nil {
		return nil, fmt.Errorf("restore %s: %w", req.Name, err)
	}
	s, _ := e.pick(where[:1])
	log := e.log.WithFields(logrus.Fields{"backup_name": req.Name, "database": target, "format": m.Format, "store": where[0]})
	started := time.Now()
	res := &RestoreResult{Manifest: m, TargetDatabase: target, Clean: req.Clean, Replace: req.Replace}
	if req.RestoreGlobals {
		if err := e.applyGlobals(ctx, s[0], m, log); err != nil {
			return nil, fmt.Errorf("restore %s: %w", req.Name, err)
		}
		res.GlobalsRestored = true
	}
	switch {
	case m.Kind == KindServer:
		err = e.restoreServer(ctx, s[0], m, req, res, log)
	case req.Replace:
		err = e.replaceFromStore(ctx, s[0], m, target, res, req.Progress, log)
	default:
		err = e.restoreArchive(ctx, s[0], m, target, req.Clean, req.Progress, log)
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s into %s: %w", req.Name, target, err)
	}
	log.WithFields(logrus.Fields{"size_bytes": m.SizeBytes, "clean": req.Clean, "replace": req.Replace,
		"duration_ms": time.Since(started).Milliseconds()}).Info("restore complete")
	report(req.Progress, Progress{Phase: "done", Bytes: m.SizeBytes})
	return res, nil
}

// applyGlobals restores the backup's globals, in a work directory of its own.
func (e *Engine) applyGlobals(ctx context.Context, s store.Store, m *Manifest, log *logrus.Entry) error {
	tools, err := e.toolsFor(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-globals-*")
	if err != nil {
		return fmt.Errorf("globals: work dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	return e.restoreGlobals(ctx, tools, s, m, tmp, log)
}

// toolsFor finds the client tools matching the server restores go to.
func (e *Engine) toolsFor(ctx context.Context) (pgtool.Tools, error) {
	tools, _, err := e.toolsOf(ctx, e.conn.WithDatabase("postgres"))
	return tools, err
}

// toolsOf finds the client tools for the server conn reaches, and its
// version number.
func (e *Engine) toolsOf(ctx context.Context, conn pgtool.Conn) (pgtool.Tools, int, error) {
	serverNum, err := pgtool.ServerVersion(ctx, conn)
	if err != nil {
		return pgtool.Tools{}, 0, err
	}
	tools, err := e.finder.Find(ctx, serverNum)
	return tools, serverNum, err
}

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

// restoreArchive restores one archive into target, the way its format
// restores best: streamed into pg_restore (custom, tar), or through
// WORK_DIR (plain, directory).
func (e *Engine) restoreArchive(ctx context.Context, s store.Store, m *Manifest, target string, clean bool, progress ProgressFunc, log *logrus.Entry) error {
	if !m.Format.spec().stream {
		return e.withFetched(ctx, s, m, progress, func(tools pgtool.Tools, archive string) error {
			return e.restoreInPlace(ctx, tools, m, archive, target, clean, log)
		})
	}
	tools, err := e.toolsFor(ctx)
	if err != nil {
		return err
	}
	report(progress, Progress{Phase: "restoring"})
	return e.streamRestore(ctx, tools, s, m, target, clean, progress, log)
}

// replaceFromStore fetches the archive into WORK_DIR and replaces target
// with it (see replace).
func (e *Engine) replaceFromStore(ctx context.Context, s store.Store, m *Manifest, target string, res *RestoreResult, progress ProgressFunc, log *logrus.Entry) error {
	return e.withFetched(ctx, s, m, progress, func(tools pgtool.Tools, archive string) error {
		return e.replace(ctx, tools, m, archive, target, res, log)
	})
}

// restoreInPlace restores into target, creating it when missing (and
// dropping it again if that restore fails).
func (e *Engine) restoreInPlace(ctx context.Context, tools pgtool.Tools, m *Manifest, archive, target string, clean bool, log *logrus.Entry) error {
	created, err := e.ensureDatabase(ctx, target, log)
	if err != nil {
		return err
	}
	if err := e.runRestore(ctx, tools, e.conn.WithDatabase(target), m.Format, archive, clean); err != nil {
		if created {
			// Leave no half-restored database behind that looks like a result.
			e.dropQuietly(ctx, target, log)
		}
		return err
	}
	return nil
}

// ensureDatabase creates db when it does not exist, and says whether it did.
func (e *Engine) ensureDatabase(ctx context.Context, db string, log *logrus.Entry) (created bool, err error) {
	exists, err := pgtool.DatabaseExists(ctx, e.conn, db)
	if err != nil || exists {
		return false, err
	}
	if err := pgtool.CreateDatabase(ctx, e.conn, db); err != nil {
		return false, err
	}
	log.WithField("database", db).Info("created target database")
	return true, nil
}

// dropQuietly drops a database the engine created, even after ctx ended.
func (e *Engine) dropQuietly(ctx context.Context, db string, log *logrus.Entry) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := pgtool.DropDatabase(cctx, e.conn, db); err != nil {
		log.WithError(err).WithField("scratch", db).Warn("could not drop a database created for a failed restore")
	}
}

// checkSignature enforces signed manifests when this engine has a key.
func (e *Engine) checkSignature(m *Manifest, allowUnsigned bool) error {
	if !e.signer.Enabled() {
		return nil
	}
	err := e.signer.check(m.Name, m.raw)
	if err != nil && allowUnsigned {
		e.log.WithError(err).WithField("backup_name", m.Name).Warn("using a manifest without a valid signature, as the request allows")
		return nil
	}
	return err
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
		if err := checkFile(archive, checkPlainSQL); err != nil {
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

// checkFile runs check over the file at path.
func checkFile(path string, check func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return check(f)
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

// runRestore restores the materialized archive at path into conn's database.
func (e *Engine) runRestore(ctx context.Context, tools pgtool.Tools, conn pgtool.Conn, f Format, path string, clean bool) error {
	spec := f.spec()
	if spec.psql {
		// Clean is refused for plain archives (CheckRestoreMode); the
		// archive passed checkPlainSQL in materialize.
		args := []string{"--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction",
			"--dbname=" + conn.Database, "--file=" + path}
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
// is empty) and checks it against its manifest: signature (when manifests
// are signed), size and checksum; that pg_restore can read its table of
// contents; and, when the manifest has row counts, that the archive's data
// holds exactly that many rows per table.
func (e *Engine) Verify(ctx context.Context, name, from string, allowUnsigned bool) (*Manifest, error) {
	var stores []string
	if from != "" {
		stores = []string{from}
	}
	m, where, err := e.Find(ctx, name, stores)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if err := e.checkSignature(m, allowUnsigned); err != nil {
		return m, fmt.Errorf("verify %s: %w", name, err)
	}
	s, _ := e.pick(where[:1])
	archives := []*Manifest{m}
	if m.Kind == KindServer {
		archives = archives[:0]
		for _, d := range m.Databases {
			archives = append(archives, m.part(d))
		}
	}
	for _, a := range archives {
		if err := e.verifyArchive(ctx, s[0], a); err != nil {
			return m, fmt.Errorf("verify %s: %w", name, err)
		}
	}
	return m, nil
}

// verifyArchive checks one archive: checksum (and decryption, and
// decompression) into WORK_DIR, then, for formats pg_restore reads, its
// table of contents and the rows per table against the manifest's counts.
func (e *Engine) verifyArchive(ctx context.Context, s store.Store, m *Manifest) error {
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-verify-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	path, err := e.materialize(ctx, s, m, tmp, nil)
	if err != nil {
		return err
	}
	if m.Kind == KindBucket {
		return nil // its checksum is what can be checked without a bucket
	}
	spec := m.Format.spec()
	var counts map[string]int64
	if spec.listable {
		if counts, err = e.archiveRowCounts(ctx, spec, path, m.RowCounts != nil); err != nil {
			return err
		}
	} else if m.RowCounts != nil {
		if err := checkFile(path, func(r io.Reader) (err error) { counts, err = copyRowCounts(r); return err }); err != nil {
			return err
		}
	}
	if m.RowCounts != nil {
		if diff := compareCounts(m.RowCounts, counts); diff != "" {
			return fmt.Errorf("%w: %s: %s", ErrRowCountMismatch, m.Database, diff)
		}
	}
	return nil
}

// archiveRowCounts checks that pg_restore can read the archive's table of
// contents and, when withCounts, has pg_restore write its data as SQL and
// counts the COPY rows in that stream (nothing touches a disk or a server).
func (e *Engine) archiveRowCounts(ctx context.Context, spec formatSpec, path string, withCounts bool) (map[string]int64, error) {
	tools, err := e.finder.Newest(ctx)
	if err != nil {
		return nil, err
	}
	if err := tools.Command(ctx, e.conn, "pg_restore", "--list", "--format="+spec.flag, path).Run(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	if !withCounts {
		return nil, nil
	}
	cmd := tools.Command(ctx, e.conn, "pg_restore", "--data-only", "--file=-", "--format="+spec.flag, path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	counts, cerr := copyRowCounts(out)
	if cerr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	return counts, cerr
}
