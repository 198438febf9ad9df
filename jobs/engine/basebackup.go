package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
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
	// Timeline is the timeline the backup started on (backup_label's
	// START TIMELINE, the first WAL range's in backup_manifest).
	Timeline uint32 `json:"timeline"`
	// StartLSN and StopLSN are in PostgreSQL's notation ("0/2000028"):
	// backup_manifest's WAL-Ranges, the first range's Start-LSN (which
	// backup_label's START WAL LOCATION must equal) and the last one's
	// End-LSN.
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

// maxBackupManifest bounds PostgreSQL's backup_manifest, which is spooled
// in WORK_DIR while the tar streams past (it is the tar's last member).
// It takes about 150 bytes per file of the data directory: 256 MiB is well
// over a million files.
const maxBackupManifest = 256 << 20

// errIsBase refuses a base backup asked to be restored or drilled like a
// dump.
func errIsBase(op string, name Name) error {
	return fmt.Errorf("%s %s: %w: %s is a base backup: it is restored by point-in-time recovery", op, name, ErrInvalid, name)
}

// BaseBackup streams pg_basebackup's tar of the whole server through the
// codec, encryption and checksums into the stores, with no copy of the
// data directory on local disk, and publishes a manifest with Content
// ContentBase and Base set.
//
// pg_basebackup runs with -D - -Ft -X none: one tar on stdout (so a server
// with tablespaces besides pg_default and pg_global is refused, as
// ErrInvalid), PostgreSQL's backup_manifest as its last member, and no
// WAL, which comes from the server's WAL archive. While the tar streams
// to the stores, a reader of a copy sums its files' sizes, reads
// backup_label and spools backup_manifest (at most maxBackupManifest) into
// WORK_DIR, from where it is stored beside the archive. A COMPRESSION of
// pg_dump stores base backups with the default codec: pg_basebackup's
// stream is not compressed. On any failure nothing is left listed.
func (e *Engine) BaseBackup(ctx context.Context, req BaseBackupRequest) (*Manifest, error) {
	if err := req.Name.required(); err != nil {
		return nil, fmt.Errorf("base backup: %w", err)
	}
	e = e.on(req.Server)
	if e.codec.PgDump {
		v := *e
		v.codec = DefaultCodec
		e = &v
	}
	targets, err := e.pick(req.Stores)
	if err != nil {
		return nil, fmt.Errorf("base backup %s: %w", req.Name, err)
	}
	log := e.log.WithFields(logrus.Fields{"backup_name": req.Name, "wal_archive": req.WALArchive})
	if done, err := e.claimName(ctx, "base backup", req.Name, req.TaskID, log); done != nil || err != nil {
		return done, err
	}
	m, err := e.takeBase(ctx, req, targets)
	if err != nil {
		return nil, fmt.Errorf("base backup %s: %w", req.Name, err)
	}
	if err := e.publish(ctx, targets, m); err != nil {
		return nil, fmt.Errorf("base backup %s: %w", req.Name, err)
	}
	log.WithFields(logrus.Fields{"size_bytes": m.SizeBytes, "unpacked_bytes": m.Base.UnpackedBytes,
		"start_lsn": m.Base.StartLSN, "stop_lsn": m.Base.StopLSN, "timeline": m.Base.Timeline,
		"duration_ms": m.FinishedAt.Sub(m.StartedAt).Milliseconds()}).Info("base backup complete")
	report(req.Progress, Progress{Phase: "done", Bytes: m.SizeBytes})
	return m, nil
}

// takeBase is a base backup's dump stage: the archive and its
// backup_manifest in the stores, and the manifest to publish. On failure
// nothing is left under either key.
func (e *Engine) takeBase(ctx context.Context, req BaseBackupRequest, targets []store.Store) (*Manifest, error) {
	conn := e.conn
	if err := singleTablespace(ctx, conn); err != nil {
		return nil, err
	}
	tools, serverNum, err := e.toolsOf(ctx, conn)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(tools.Path("pg_basebackup")); err != nil {
		// Some packagings put it apart from pg_dump (postgresql-client
		// has both on Debian).
		return nil, fmt.Errorf("%w: no pg_basebackup beside pg_dump %s in %s", pgtool.ErrNoMatchingClient, tools.Version, tools.Dir)
	}
	m := e.manifestFor(req.Name, targets, req.TaskID, req.Target, req.Scheduled)
	m.Content, m.ServerVersion = ContentBase, versionString(serverNum)
	m.ArchiveKey = baseArchiveKey(req.Name, e.codec, e.enc.encrypts())
	spool, err := os.CreateTemp(e.workDir, "pgbackup-backup_manifest-*")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	defer func() {
		_ = spool.Close()
		_ = os.Remove(spool.Name())
	}()
	report(req.Progress, Progress{Phase: "basebackup"})
	src, stop, err := startTool(ctx, tools, conn, "pg_basebackup", "--pgdata=-", "--format=tar", "--wal-method=none",
		"--checkpoint=fast", "--no-password", "--label=pgbackup "+req.Name.String())
	if err != nil {
		return nil, err
	}
	tee := newTarTee(src, spool, maxBackupManifest)
	digest, err := e.putStream(ctx, targets, m.ArchiveKey, tee, stop, "uploading", req.Progress)
	scan, scanErr := tee.wait()
	if err == nil && scanErr != nil {
		e.removeQuietly(targets, m.ArchiveKey)
		err = scanErr
	}
	if err != nil {
		return nil, err
	}
	m.SizeBytes, m.SHA256, m.ChunkSums = digest.Size(), digest.Sum(), digest.Sums()
	m.Base, err = baseInfo(scan, spool, req.WALArchive, tools.Version)
	if err == nil {
		report(req.Progress, Progress{Phase: "uploading backup_manifest", Bytes: m.SizeBytes})
		m.Base.BackupManifest, err = e.putBackupManifest(ctx, targets, req.Name, spool)
	}
	if err != nil {
		e.removeQuietly(targets, m.ArchiveKey)
		return nil, err
	}
	m.FinishedAt = time.Now().UTC()
	report(req.Progress, Progress{Phase: "publishing", Bytes: m.SizeBytes})
	return m, nil
}

// singleTablespace refuses a server with tablespaces of its own:
// pg_basebackup writes only one tablespace to standard output.
func singleTablespace(ctx context.Context, c pgtool.Conn) error {
	conn, err := pgtool.Connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	var names string
	err = conn.QueryRow(ctx, `SELECT count(*), coalesce(string_agg(spcname, ', ' ORDER BY spcname), '')
		FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')`).Scan(&n, &names)
	if err != nil {
		return fmt.Errorf("list tablespaces: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%w: the server has %d tablespace(s) besides pg_default (%s); a base backup streams a single tablespace", ErrInvalid, n, names)
	}
	return nil
}

// baseInfo checks what the tar held against the spooled backup_manifest
// and records both.
func baseInfo(scan baseScan, spool *os.File, walArchive, version string) (*BaseInfo, error) {
	if err := scan.complete(); err != nil {
		return nil, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("backup_manifest: %w", err)
	}
	ranges, err := parseWALRanges(spool)
	if err != nil {
		return nil, err
	}
	first, last := ranges[0], ranges[len(ranges)-1]
	if first.start != scan.startLSN || first.Timeline != scan.timeline {
		return nil, fmt.Errorf("%w: backup_label starts at %s on timeline %d, backup_manifest at %s on timeline %d",
			ErrInvalidArchive, scan.startLSN, scan.timeline, first.start, first.Timeline)
	}
	return &BaseInfo{WALArchive: walArchive, Timeline: first.Timeline, StartLSN: first.start.String(),
		StopLSN: last.end.String(), UnpackedBytes: scan.unpacked, PgBasebackupVersion: version}, nil
}

// putBackupManifest stores the spooled backup_manifest as the base
// backup's companion, encoded like the archive.
func (e *Engine) putBackupManifest(ctx context.Context, targets []store.Store, name Name, spool *os.File) (*Companion, error) {
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("backup_manifest: %w", err)
	}
	key := backupManifestKey(name, e.codec, e.enc.encrypts())
	digest, err := e.putStream(ctx, targets, key, spool, func() {}, "uploading backup_manifest", nil)
	if err != nil {
		return nil, fmt.Errorf("backup_manifest: %w", err)
	}
	return &Companion{ArchiveKey: key, SizeBytes: digest.Size(), SHA256: digest.Sum(), ChunkSums: digest.Sums()}, nil
}

// checkBase is decodeManifest's check of a base backup's manifest: its
// keys are the ones its name and codec give, and it has what a
// point-in-time recovery needs.
func (m *Manifest) checkBase() error {
	codec, err := parseManifestCodec(m.Codec)
	if err != nil {
		return err
	}
	if m.ArchiveKey != baseArchiveKey(m.Name, codec, m.Encrypted) {
		return fmt.Errorf("archive key %q does not match a base backup's", m.ArchiveKey)
	}
	if m.Base == nil || m.Base.BackupManifest == nil || m.Base.BackupManifest.ArchiveKey != backupManifestKey(m.Name, codec, m.Encrypted) {
		return errors.New("not a valid base backup manifest: backup_manifest missing or misplaced")
	}
	if m.Globals != nil || len(m.Databases) > 0 {
		return errors.New("not a valid base backup manifest: it lists databases or globals")
	}
	return nil
}
