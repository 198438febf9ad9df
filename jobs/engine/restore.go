package engine

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// RestoreRequest asks for one restore.
type RestoreRequest struct {
	Name Name
	// Server is the PostgreSQL server to restore into; nil means the
	// configured one.
	Server *pgtool.Conn
	// From is the store to read; empty means the first that holds it, in
	// configured order.
	From string
	// TargetDatabase defaults (when zero) to the database the backup was
	// taken from (the manifest's). It is created when missing.
	TargetDatabase pgtool.Ident
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
	Databases []pgtool.Ident
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
	if err := req.Name.required(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	var from []string
	if req.From != "" {
		from = []string{req.From}
	}
	m, where, err := e.Find(ctx, req.Name, from)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if m.Content == ContentBucket {
		return nil, fmt.Errorf("restore %s: %w: a bucket backup; restore it with POST /api/admin/buckets/restore", req.Name, ErrInvalid)
	}
	if m.Content == ContentBase {
		return nil, errIsBase("restore", req.Name)
	}
	if err := e.checkSignature(m, req.AllowUnsigned); err != nil {
		return nil, fmt.Errorf("restore %s: %w", req.Name, err)
	}
	target := req.TargetDatabase.String()
	if target == "" {
		target = m.Database
	}
	if err := CheckRestoreMode(m.Format, req.Clean, req.Replace); err != nil {
		return nil, fmt.Errorf("restore %s: %w", req.Name, err)
	}
	if err := e.refuseNonEmpty(ctx, m, req, target); err != nil {
		return nil, fmt.Errorf("restore %s: %w", req.Name, err)
	}
	s, _ := e.pick(where[:1])
	log := e.log.WithFields(logrus.Fields{"backup_name": req.Name, "database": target, "format": m.Format, "store": where[0]})
	started := time.Now()
	res := &RestoreResult{Manifest: m.Summary(), TargetDatabase: target, Clean: req.Clean, Replace: req.Replace}
	if req.RestoreGlobals {
		if err := e.applyGlobals(ctx, s[0], m, log); err != nil {
			return nil, fmt.Errorf("restore %s: %w", req.Name, err)
		}
		res.GlobalsRestored = true
	}
	switch {
	case m.Content == ContentServer:
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

// refuseNonEmpty refuses, before anything is touched, a restore without
// clean or replace into an existing database that holds tables: it would
// fail at the first object in the way (or, for the directory format, which
// restores in several transactions, half succeed). A whole-server restore
// checks each database it would restore into.
func (e *Engine) refuseNonEmpty(ctx context.Context, m *Manifest, req RestoreRequest, target string) error {
	if req.Clean || req.Replace {
		return nil
	}
	targets := []string{target}
	hint := `restore with "clean": true (drop and recreate the archive's objects), "replace": true ` +
		`(restore beside it, check, then swap it in) or another "target_database"`
	if m.Content == ContentServer {
		parts, err := m.serverParts(req.Databases)
		if err != nil {
			return err
		}
		targets = targets[:0]
		for _, d := range parts {
			targets = append(targets, d.Database)
		}
		hint = `restore with "clean": true (drop and recreate the archive's objects) or leave it out of "databases"`
	}
	for _, db := range targets {
		n, err := pgtool.UserRelations(ctx, e.conn, db)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: database %s already holds %d tables or other relations; %s", ErrNotEmpty, db, n, hint)
		}
	}
	return nil
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

// replaceFromStore fetches the archive into WORK_DIR and replaces target
// with it (see replace).
func (e *Engine) replaceFromStore(ctx context.Context, s store.Store, m *Manifest, target string, res *RestoreResult, progress ProgressFunc, log *logrus.Entry) error {
	return e.withFetched(ctx, s, m, progress, func(tools pgtool.Tools, archive string) error {
		return e.replace(ctx, tools, m, archive, target, res, log)
	})
}

// runRestore restores the materialized archive at path into conn's database.
func (e *Engine) runRestore(ctx context.Context, tools pgtool.Tools, conn pgtool.Conn, f Format, path string, clean bool) error {
	spec := f.spec()
	if spec.psql {
		// Clean is refused for plain archives (CheckRestoreMode).
		// VERBOSITY=verbose prints each error's SQLSTATE, which
		// pgtool.Classify reads whatever language the server speaks.
		return e.runPlain(ctx, tools, conn, path, nil, "--no-psqlrc", "--quiet", "--no-password",
			"--set=ON_ERROR_STOP=1", "--set=VERBOSITY=verbose", "--single-transaction")
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
