package e2e

import (
	"bytes"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
)

// TestArchiverStopStoresReceivedWAL: an archiver stopped with SIGTERM
// stores the WAL it has received before it exits. WAL_PARTIAL_INTERVAL is
// an hour and the marker's segment is still open, so only the stop can
// store it: the archive must hold the marker's row and its COMMIT record
// (pg_waldump over the segments read back through jobs/wal) once the
// server has sent them to the archiver (pg_stat_replication's sent_lsn at
// or past the commit's end; the archiver takes in what was sent before
// the stop, even if it had not read it yet).
func TestArchiverStopStoresReceivedWAL(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	arch := p.start("archiver", harness.Archiver, "WAL_PARTIAL_INTERVAL=1h")
	if err := arch.WaitLog(t.Context(), "streaming WAL", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	app := "pgbackup_" + walTarget
	text := testbench.UniqueName("stop_marker") + "-end"
	var xid, flushed string
	if _, err := p.su.Exec(ctx, "CREATE TABLE stop_markers (m text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if err := p.su.QueryRow(ctx, "INSERT INTO stop_markers VALUES ($1) RETURNING pg_current_xact_id()::text", text).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	// After COMMIT returned (synchronous_commit on), the server's flush
	// position is past the commit record.
	if err := p.su.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&flushed); err != nil {
		t.Fatal(err)
	}
	err := harness.Poll(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		var ok bool
		err := p.su.QueryRow(ctx, "SELECT coalesce(sent_lsn >= $1::pg_lsn, false) FROM pg_stat_replication WHERE application_name = $2",
			flushed, app).Scan(&ok)
		return err == nil && ok, nil
	})
	if err != nil {
		t.Fatalf("the server never sent the archiver its WAL up to %s: %v", flushed, err)
	}
	if objs, err := p.minio().List(ctx, "wal/"); err != nil || len(objs) != 0 {
		t.Fatalf("the archive holds %d objects before the stop (%v): the test could pass without it", len(objs), err)
	}
	stopCleanly(t, arch)

	commits := archivedCommits(t, p.minio(), p.serverMajor(t))
	if !commits[xid] {
		t.Errorf("the COMMIT of the marker's transaction %s (sent to the archiver, WAL up to %s) is not in the archive after SIGTERM", xid, flushed)
	}
	if !bytes.Contains(archivedWAL(t, p.minio()), []byte(text)) {
		t.Errorf("the marker's row %q is not in the archive after SIGTERM", text)
	}
}

// serverMajor is the private server's major version (pg_waldump must
// match it).
func (p *pitrCluster) serverMajor(t *testing.T) int {
	t.Helper()
	var versionNum int
	if err := p.su.QueryRow(t.Context(), "SELECT current_setting('server_version_num')::int").Scan(&versionNum); err != nil {
		t.Fatal(err)
	}
	return versionNum / 10000
}
