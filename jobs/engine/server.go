package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// KindServer marks a whole-server backup: every database of the server,
// one archive each, under one backup name, plus the server's globals.
const KindServer = "server"

// AllDatabases as a request's database asks for a whole-server backup.
const AllDatabases = "*"

// serverArchiveKey is one database's archive in a whole-server backup:
// postgres/<name>/<database><extensions>. Backup names have no '/', so no
// other backup's key has this shape.
func serverArchiveKey(name, db string, f Format, c Codec, encrypted bool) string {
	key := Prefix + name + "/" + db + f.Extension() + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}

// serverDatabases lists the databases a whole-server backup takes: every
// one that is not a template and accepts connections.
func serverDatabases(ctx context.Context, c pgtool.Conn) ([]string, error) {
	conn, err := pgtool.Connect(ctx, c.WithDatabase("postgres"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1")
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// databaseExists reports whether db still exists; on any doubt (the
// server cannot be asked) it says yes, so that the failure stands.
func databaseExists(ctx context.Context, c pgtool.Conn, db string) bool {
	conn, err := pgtool.Connect(ctx, c)
	if err != nil {
		return true
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", db).Scan(&n); err != nil {
		return true
	}
	return n > 0
}

// serverBackup dumps every database of the server into its own archive
// and the globals beside them; the manifest lists them all. Any failure
// removes everything written.
func (e *Engine) serverBackup(ctx context.Context, req BackupRequest, format Format, targets []store.Store, log *logrus.Entry) (*Manifest, error) {
	conn := e.conn.WithDatabase("postgres")
	tools, serverNum, err := e.toolsOf(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	dbs, err := serverDatabases(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	started := time.Now().UTC()
	m := &Manifest{Name: req.Name, Kind: KindServer, Database: AllDatabases, Format: format, StartedAt: started,
		ServerVersion: versionString(serverNum), PgDumpVersion: tools.Version, Stores: names(targets), TaskID: req.TaskID,
		Target: req.Target, Scheduled: req.Scheduled, Codec: e.codec.String()}
	if e.enc.encrypts() {
		m.Encrypted, m.Recipients = true, e.enc.fingerprints
	}
	fail := func(err error) (*Manifest, error) {
		e.removeQuietly(targets, m.objectKeys()...)
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	for _, db := range dbs {
		if !pgtool.ValidIdentifier(db) {
			log.WithField("database", db).Warn("skipping a database whose name needs quoting")
			continue
		}
		report(req.Progress, Progress{Phase: "dumping " + db})
		key := serverArchiveKey(req.Name, db, format, e.codec, e.enc.encrypts())
		part, err := e.dumpOne(ctx, tools, e.conn.WithDatabase(db), format, key, targets, req.Progress)
		if err != nil && ctx.Err() == nil && !databaseExists(ctx, conn, db) {
			// Dropped since the list was taken: it is no longer part of
			// the server, so its absence is not a failed backup.
			log.WithField("database", db).WithError(err).Warn("database dropped during the backup; skipped")
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("database %s: %w", db, err))
		}
		m.Databases = append(m.Databases, *part)
		m.SizeBytes += part.SizeBytes
	}
	report(req.Progress, Progress{Phase: "globals"})
	if m.Globals, err = e.dumpGlobals(ctx, tools, conn, req.Name, targets); err != nil {
		return fail(err)
	}
	m.FinishedAt = time.Now().UTC()
	if format.spec().pgCompress {
		m.Compression = e.pgDumpCompress()
	}
	if err := e.publish(ctx, targets, m); err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	log.WithFields(logrus.Fields{"databases": len(m.Databases), "size_bytes": m.SizeBytes}).Info("whole-server backup complete")
	report(req.Progress, Progress{Phase: "done", Bytes: m.SizeBytes})
	return m, nil
}

// part is one database of a whole-server backup as a manifest of its own,
// for the restore and verify code that reads one archive.
func (m *Manifest) part(d DatabaseArchive) *Manifest {
	return &Manifest{Name: m.Name, Database: d.Database, Format: m.Format, ArchiveKey: d.ArchiveKey,
		SizeBytes: d.SizeBytes, SHA256: d.SHA256, RowCounts: d.RowCounts, Codec: m.Codec,
		Encrypted: m.Encrypted, Recipients: m.Recipients}
}

// serverParts selects the databases of a whole-server backup to restore
// (all when names is empty).
func (m *Manifest) serverParts(names []string) ([]DatabaseArchive, error) {
	if len(names) == 0 {
		return m.Databases, nil
	}
	var out []DatabaseArchive
	for _, n := range names {
		i := slices.IndexFunc(m.Databases, func(d DatabaseArchive) bool { return d.Database == n })
		if i < 0 {
			return nil, fmt.Errorf("%w: backup %s holds no database %q", ErrNotFound, m.Name, n)
		}
		out = append(out, m.Databases[i])
	}
	return out, nil
}

// restoreServer restores the chosen databases of a whole-server backup,
// each into the database of its name.
func (e *Engine) restoreServer(ctx context.Context, s store.Store, m *Manifest, req RestoreRequest, res *RestoreResult, log *logrus.Entry) error {
	if req.TargetDatabase != "" || req.Replace {
		return fmt.Errorf("%w: a whole-server backup restores each database under its own name: choose them with databases, not target_database or replace", ErrInvalid)
	}
	parts, err := m.serverParts(req.Databases)
	if err != nil {
		return err
	}
	for _, d := range parts {
		if err := e.restoreArchive(ctx, s, m.part(d), d.Database, req.Clean, req.Progress, log); err != nil {
			return fmt.Errorf("database %s: %w", d.Database, err)
		}
		res.Databases = append(res.Databases, d.Database)
	}
	return nil
}

// objectKeys are every object a backup consists of besides its manifest.
func (m *Manifest) objectKeys() []string {
	var keys []string
	if m.ArchiveKey != "" {
		keys = append(keys, m.ArchiveKey)
	}
	for _, d := range m.Databases {
		keys = append(keys, d.ArchiveKey)
	}
	return append(keys, m.companionKeys()...)
}

// requiredSizes are the objects that must be present, with these sizes,
// for the backup to be complete: the archive, or every database's.
func (m *Manifest) requiredSizes() map[string]int64 {
	if m.Kind == KindServer {
		out := make(map[string]int64, len(m.Databases))
		for _, d := range m.Databases {
			out[d.ArchiveKey] = d.SizeBytes
		}
		return out
	}
	return map[string]int64{m.ArchiveKey: m.SizeBytes}
}

// DatabaseNames are the databases of a whole-server backup, nil otherwise.
func (m *Manifest) DatabaseNames() []string {
	var out []string
	for _, d := range m.Databases {
		out = append(out, d.Database)
	}
	return out
}
