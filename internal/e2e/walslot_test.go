package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/wal"
)

// setServer changes server settings (ALTER SYSTEM, reload) and waits
// until a new session sees every one of them (pg_reload_conf only
// signals the postmaster).
func (p *pitrCluster) setServer(t *testing.T, settings map[string]string) {
	t.Helper()
	for k, v := range settings {
		if _, err := p.su.Exec(t.Context(), fmt.Sprintf("ALTER SYSTEM SET %s = '%s'", k, v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.su.Exec(t.Context(), "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("settings %v", settings), func() bool {
		c, err := pgx.Connect(t.Context(), fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres", p.pg.PGSocket, p.pg.PGPort))
		if err != nil {
			return false
		}
		defer c.Close(context.Background())
		for k, v := range settings {
			var got string
			if c.QueryRow(t.Context(), "SHOW "+k).Scan(&got) != nil || got != v {
				return false
			}
		}
		return true
	})
}

// walDirSize is the size of the server's pg_wal directory, read from its
// data directory (the test runs as root or as the server's owner).
func walDirSize(t *testing.T, dataDir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "pg_wal"))
	if err != nil {
		t.Fatalf("read pg_wal: %v", err)
	}
	var n int64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue // archive_status
		}
		info, err := e.Info()
		if err != nil {
			continue // removed since the listing
		}
		n += info.Size()
	}
	return n
}

// slotRow is the archive's slot as the server shows it.
func (p *pitrCluster) slotRow(t *testing.T) (status string, lag int64, current wal.LSN) {
	t.Helper()
	var cur string
	err := p.su.QueryRow(t.Context(), `SELECT coalesce(wal_status, ''), coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint,
		pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = $1`, "pgbackup_"+walTarget).Scan(&status, &lag, &cur)
	if err != nil {
		t.Fatalf("read slot pgbackup_%s: %v", walTarget, err)
	}
	current, err = wal.ParseLSN(cur)
	if err != nil {
		t.Fatal(err)
	}
	return status, lag, current
}

// TestWALSlotBoundsPgWal: with max_slot_wal_keep_size 64MB, max_wal_size
// 64MB and the archiver stopped after creating its slot, a writer writes
// WAL far past the cap: the server's pg_wal stays within
// max_slot_wal_keep_size + max_wal_size + 3 segments (the slot's cap, the
// WAL written and recycled ahead between checkpoints, and the current,
// partly kept and next segments); the scheduler raises wal.slot_lag once
// the slot keeps more than WAL_SLOT_LAG_ALERT, before the server
// invalidates the slot, and the API's slot_lag_bytes grows although the
// archiver is dead; once a CHECKPOINT invalidates the slot, wal.slot_lost
// says what to do.
func TestWALSlotBoundsPgWal(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	p.setServer(t, map[string]string{"max_slot_wal_keep_size": "64MB", "max_wal_size": "64MB", "min_wal_size": "32MB"})
	var dataDir string
	var keep, maxWAL, walKeep, segSize int64
	if err := p.su.QueryRow(t.Context(), `SELECT current_setting('data_directory'),
		pg_size_bytes(current_setting('max_slot_wal_keep_size')), pg_size_bytes(current_setting('max_wal_size')),
		pg_size_bytes(current_setting('wal_keep_size')), pg_size_bytes(current_setting('wal_segment_size'))`).
		Scan(&dataDir, &keep, &maxWAL, &walKeep, &segSize); err != nil {
		t.Fatal(err)
	}
	bound := max(keep, walKeep) + maxWAL + 3*segSize
	p.startAPI()
	arch := p.startArchiving(t)
	if err := arch.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Half the cap: between it and the cap lies more than a segment, so
	// the writer below stops inside that window whatever the segment size.
	hook, sched := p.startWatcher(t, "WAL_SLOT_LAG_ALERT=50%")
	threshold := keep / 2
	if keep-threshold <= segSize {
		t.Fatalf("max_slot_wal_keep_size %d leaves no segment (%d) between the threshold %d and itself", keep, segSize, threshold)
	}

	ctx := t.Context()
	if _, err := p.su.Exec(ctx, "CREATE TABLE filler (pad text)"); err != nil {
		t.Fatal(err)
	}
	var most int64
	// measure fails the test as soon as pg_wal is over the bound.
	measure := func() {
		t.Helper()
		most = max(most, walDirSize(t, dataDir))
		if most > bound {
			t.Fatalf("pg_wal reached %d bytes, want at most %d (max_slot_wal_keep_size %d + max_wal_size %d + 3 segments of %d)",
				most, bound, keep, maxWAL, segSize)
		}
	}
	// write adds about 1MB of rows, switches to the next segment and
	// measures pg_wal.
	write := func() {
		t.Helper()
		if _, err := p.su.Exec(ctx, "INSERT INTO filler SELECT repeat('x', 500) FROM generate_series(1, 2000)"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.su.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
			t.Fatal(err)
		}
		measure()
	}
	_, _, start := p.slotRow(t)
	for {
		status, lag, _ := p.slotRow(t)
		if status == "lost" || status == "unreserved" {
			t.Fatalf("slot %s with lag %d before the threshold %d was passed", status, lag, threshold)
		}
		if lag > threshold {
			break
		}
		write()
	}
	waitFor(t, 60*time.Second, "wal.slot_lag at the webhook", func() bool { return hook.count(alert.EventWALSlotLag, walTarget) > 0 })
	if status, lag, _ := p.slotRow(t); status == "lost" {
		t.Fatalf("the slot was lost (lag %d) by the time wal.slot_lag came: the alert must come first", lag)
	}
	t.Logf("wal.slot_lag: %s", hook.find(alert.EventWALSlotLag, walTarget).Text)
	// The archiver is dead: what the API shows comes from the scheduler.
	err := harness.Poll(ctx, 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		tl, err := p.viewer().Targets(ctx)
		if err != nil {
			return false, err
		}
		for _, tg := range tl.Targets {
			if tg.Name == walTarget && tg.PITR != nil && tg.PITR.SlotLagBytes > threshold {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("GET /api/admin/targets never showed slot_lag_bytes above %d with the archiver stopped: %v", threshold, err)
	}

	// Far past the cap: without it, pg_wal would hold all of this.
	for {
		_, _, current := p.slotRow(t)
		if int64(current-start) > 2*bound {
			break
		}
		write()
	}
	waitFor(t, 60*time.Second, "the server to invalidate the slot", func() bool {
		write()
		if _, err := p.su.Exec(ctx, "CHECKPOINT"); err != nil {
			t.Fatal(err)
		}
		measure()
		status, _, _ := p.slotRow(t)
		return status == "lost"
	})
	t.Logf("pg_wal at most %d MB; bound %d MB (max_slot_wal_keep_size %d MB + max_wal_size %d MB + 3 segments of %d MB)",
		most>>20, bound>>20, keep>>20, maxWAL>>20, segSize>>20)

	waitFor(t, 60*time.Second, "wal.slot_lost at the webhook", func() bool { return hook.count(alert.EventWALSlotLost, walTarget) > 0 })
	lost := hook.find(alert.EventWALSlotLost, walTarget)
	t.Logf("wal.slot_lost: %s", lost.Text)
	for _, want := range []string{"pg_drop_replication_slot('pgbackup_" + walTarget + "')", "restart the archiver", "new base backup", "gap from its end"} {
		if !strings.Contains(lost.Error, want) {
			t.Errorf("wal.slot_lost says %q; want it to contain %q", lost.Error, want)
		}
	}
	if err := sched.WaitLog(ctx, "replication slot", time.Second); err != nil {
		t.Errorf("the scheduler did not log the lost slot: %v", err)
	}
	if n := hook.count(alert.EventWALSlotLag, walTarget); n != 1 {
		t.Errorf("%d wal.slot_lag alerts for one episode, want 1", n)
	}
	if n := hook.count(alert.EventWALSlotLost, walTarget); n != 1 {
		t.Errorf("%d wal.slot_lost alerts for one loss, want 1", n)
	}
}
