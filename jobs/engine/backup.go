package engine

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// BackupRequest asks for one backup.
type BackupRequest struct {
	Name Name
	// Server is the PostgreSQL server to dump from; nil means the
	// configured one. Database then defaults to Server's.
	Server *pgtool.Conn
	// Database defaults to the configured one (the zero Ident).
	Database pgtool.Ident
	// WholeServer backs up every database of the server instead (see
	// ParseBackupDatabase); Database must then be zero.
	WholeServer bool
	// Format is required: the zero Format is refused (ParseFormat reads
	// an empty name as custom).
	Format Format
	// Stores to write to; every configured store when empty.
	Stores []string
	// IncludeGlobals also stores the server's roles and tablespaces
	// (pg_dumpall --globals-only) beside the archive.
	IncludeGlobals bool
	// Target and Scheduled are recorded in the manifest (see Manifest).
	Target    string
	Scheduled bool
	// TaskID lets a retried task find the backup it already finished.
	TaskID   string
	Progress ProgressFunc
}

// backupJob is a request resolved against the engine by the validate
// stage: what every later stage reads.
type backupJob struct {
	BackupRequest
	// db is the database to dump, or AllDatabases.
	db      string
	targets []store.Store
	log     *logrus.Entry
}

// Backup dumps the database into the requested stores and returns the
// manifest. On any failure nothing is left listed: archives already written
// are removed, and the manifest is never written.
//
// A backup runs in stages, each in its own file: validate (validate.go),
// dump (dump.go, dump_server.go, dump_globals.go), which streams each
// archive through encode (encode.go) into put (put.go), then publish
// (publish.go).
func (e *Engine) Backup(ctx context.Context, req BackupRequest) (*Manifest, error) {
	e = e.on(req.Server)
	job, err := e.validateBackup(req)
	if err != nil {
		return nil, err
	}
	if done, err := e.claimName(ctx, "backup", req.Name, req.TaskID, job.log); done != nil || err != nil {
		return done, err
	}
	m, err := e.dumpBackup(ctx, job)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	if err := e.publish(ctx, job.targets, m); err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	job.logDone(m)
	report(req.Progress, Progress{Phase: "done", Bytes: m.SizeBytes})
	return m, nil
}

// dumpBackup is the dump stage: one database's archive, or every
// database's of the server, each streamed through encode and put, and the
// globals beside them. It returns the manifest to publish.
func (e *Engine) dumpBackup(ctx context.Context, job *backupJob) (*Manifest, error) {
	if job.db == AllDatabases {
		return e.dumpServer(ctx, job)
	}
	return e.dumpDatabase(ctx, job)
}

// logDone records a published backup.
func (job *backupJob) logDone(m *Manifest) {
	if m.Content == ContentServer {
		job.log.WithFields(logrus.Fields{"databases": len(m.Databases), "size_bytes": m.SizeBytes}).Info("whole-server backup complete")
		return
	}
	job.log.WithFields(logrus.Fields{
		"size_bytes": m.SizeBytes, "sha256": m.SHA256, "stores": m.Stores,
		"duration_ms": m.FinishedAt.Sub(m.StartedAt).Milliseconds(),
	}).Info("backup complete")
}
