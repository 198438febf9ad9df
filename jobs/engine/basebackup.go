package engine

import (
	"context"
	"fmt"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// ContentBase marks a base backup: a copy of a whole PostgreSQL server's
// data directory (pg_basebackup's tar), the starting point a
// point-in-time recovery replays the server's archived WAL on. It is kept
// by the target's pitr_window, never by the dumps' GFS retention, and is
// never restored like a dump.
const ContentBase = "basebackup"

// BaseInfo is what a base backup's manifest records besides the archive:
// where in the WAL it starts and stops (a restore needs the archive's WAL
// from StartLSN to at least StopLSN on Timeline to be consistent), how
// big the data directory is unpacked (a restore checks free space with
// it), and PostgreSQL's own backup_manifest, stored beside the archive.
type BaseInfo struct {
	// WALArchive names the server's WAL archive (wal/<WALArchive>/) this
	// base backup belongs to.
	WALArchive string `json:"wal_archive"`
	Timeline   uint32 `json:"timeline"`
	// StartLSN and StopLSN are in PostgreSQL's notation ("0/2000028").
	StartLSN string `json:"start_lsn"`
	StopLSN  string `json:"stop_lsn"`
	// UnpackedBytes is the sum of the sizes of the files in the tar: the
	// space the data directory takes once extracted.
	UnpackedBytes int64 `json:"unpacked_bytes"`
	// BackupManifest is PostgreSQL's backup_manifest (JSON, with every
	// file's checksum), stored encoded like the archive.
	BackupManifest *Companion `json:"backup_manifest,omitempty"`
	// PgBasebackupVersion is the client that took it.
	PgBasebackupVersion string `json:"pg_basebackup_version,omitempty"`
}

// BaseBackupRequest asks for one base backup.
type BaseBackupRequest struct {
	Name Name
	// Server is the server to copy (its user needs REPLICATION); nil
	// means the configured one.
	Server *pgtool.Conn
	// WALArchive is recorded in the manifest (BaseInfo.WALArchive).
	WALArchive string
	// Stores to write to; every configured store when empty.
	Stores []string
	// Target and Scheduled are recorded in the manifest (see Manifest).
	Target    string
	Scheduled bool
	TaskID    string
	Progress  ProgressFunc
}

// BaseBackup streams pg_basebackup's tar of the whole server through the
// codec, encryption and checksums into the stores, with no copy of the
// data directory on local disk, and publishes a manifest with Content
// ContentBase and Base set.
func (e *Engine) BaseBackup(ctx context.Context, req BaseBackupRequest) (*Manifest, error) {
	return nil, fmt.Errorf("base backup %s: not implemented", req.Name)
}
