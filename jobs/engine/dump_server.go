package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// dumpServer is the dump stage of a whole-server backup: every database
// of the server into its own archive, each through encode and put, and
// the globals beside them; the manifest lists them all. Any failure
// removes everything written.
func (e *Engine) dumpServer(ctx context.Context, job *backupJob) (*Manifest, error) {
	conn := e.conn.WithDatabase("postgres")
	tools, serverNum, err := e.toolsOf(ctx, conn)
	if err != nil {
		return nil, err
	}
	dbs, err := serverDatabases(ctx, conn)
	if err != nil {
		return nil, err
	}
	m := e.newManifest(job, tools, serverNum)
	m.Content = ContentServer
	for _, db := range dbs {
		part, err := e.dumpServerDatabase(ctx, job, tools, conn, db)
		if err != nil {
			e.removeQuietly(job.targets, m.objectKeys()...)
			return nil, fmt.Errorf("database %s: %w", db, err)
		}
		if part != nil {
			m.Databases = append(m.Databases, *part)
			m.SizeBytes += part.SizeBytes
		}
	}
	report(job.Progress, Progress{Phase: "globals"})
	if m.Globals, err = e.dumpGlobals(ctx, tools, conn, job.Name, job.targets); err != nil {
		e.removeQuietly(job.targets, m.objectKeys()...)
		return nil, err
	}
	m.FinishedAt = time.Now().UTC()
	return m, nil
}

// dumpServerDatabase dumps one database of a whole-server backup. It
// returns nil, nil for a database that is not part of the backup: one
// whose name needs quoting, or one dropped since the list was taken.
func (e *Engine) dumpServerDatabase(ctx context.Context, job *backupJob, tools pgtool.Tools, conn pgtool.Conn, db string) (*DatabaseArchive, error) {
	if !pgtool.ValidIdentifier(db) {
		job.log.WithField("database", db).Warn("skipping a database whose name needs quoting")
		return nil, nil
	}
	report(job.Progress, Progress{Phase: "dumping " + db})
	key := serverArchiveKey(job.Name, db, job.Format, e.codec, e.enc.encrypts())
	part, err := e.dumpOne(ctx, tools, e.conn.WithDatabase(db), job.Format, key, job.targets, job.Progress)
	if err != nil && ctx.Err() == nil && !databaseExists(ctx, conn, db) {
		// Dropped since the list was taken: it is no longer part of
		// the server, so its absence is not a failed backup.
		job.log.WithField("database", db).WithError(err).Warn("database dropped during the backup; skipped")
		return nil, nil
	}
	return part, err
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
