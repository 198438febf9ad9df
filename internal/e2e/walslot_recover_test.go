package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/jobs/wal"
)

// TestArchiverResumesAfterALostSlot: on a server with 1 MiB segments and
// max_slot_wal_keep_size 4MB, the archiver streams, is stopped, and the
// server writes past the cap until a CHECKPOINT invalidates the slot. The
// restarted archiver refuses the lost slot and streams nothing. Once the
// slot is dropped as wal.slot_lost says, the archiver, retrying, creates it
// again, logs the gap from the archive's end as an error and streams: rows
// written after that are archived in a chain past the gap, which `pgbackup
// wal verify` reports as the one gap, starting at the old end. A restart
// (the archive's contiguous end is still the gap's start, the slot inside
// a segment partly stored) streams again, over the stored chunk, and wal
// verify still finds that one gap. An archiver that resumes from the
// archive's end instead never streams again after the drop.
func TestArchiverResumesAfterALostSlot(t *testing.T) {
	t.Parallel()
	p := newSmallSegmentCluster(t)
	p.setServer(t, map[string]string{"max_slot_wal_keep_size": "4MB", "max_wal_size": "4MB", "min_wal_size": "2MB"})
	ctx := t.Context()
	arch := p.start("archiver", harness.Archiver)
	if err := arch.WaitLog(ctx, "streaming WAL", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	lsn, seg := p.writeAndSwitch(t, 200)
	p.waitArchived(t, lsn, seg)
	stopCleanly(t, arch)
	oldEnd := p.chainEnd(t)

	if _, err := p.su.Exec(ctx, "CREATE TABLE filler (pad text)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the server to invalidate the slot", func() bool {
		for _, q := range []string{"INSERT INTO filler SELECT repeat('x', 500) FROM generate_series(1, 2000)", "SELECT pg_switch_wal()", "CHECKPOINT"} {
			if _, err := p.su.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		status, _, _ := p.slotRow(t)
		return status == "lost"
	})

	arch, err := arch.Restart()
	if err != nil {
		t.Fatal(err)
	}
	if err := arch.WaitLog(ctx, "replication slot invalidated", 30*time.Second); err != nil {
		t.Fatalf("the archiver did not refuse the lost slot: %v", err)
	}
	if out, _ := arch.Output(); strings.Count(out, "streaming WAL") != 1 {
		t.Fatalf("the archiver streamed from a lost slot:\n%s", out)
	}
	// As wal.slot_lost says: the archiver, retrying, creates the slot
	// again by itself.
	if _, err := p.su.Exec(ctx, "SELECT pg_drop_replication_slot('pgbackup_"+walTarget+"')"); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		if run > 1 {
			if arch, err = arch.Restart(); err != nil {
				t.Fatal(err)
			}
		}
		if err := arch.WaitLog(ctx, "streaming WAL", 30*time.Second); err != nil {
			t.Fatalf("run %d after the drop: %v", run, err)
		}
		lsn, seg := p.writeAndSwitch(t, 200)
		p.waitArchived(t, lsn, seg)
		// The new slot's run names the gap as an error; the next one
		// notes that it goes on past it.
		if err := arch.WaitLog(ctx, []string{"", "take a new base backup now", "is before the slot's segment"}[run], time.Second); err != nil {
			t.Fatalf("run %d after the drop did not log the gap: %v", run, err)
		}
		code, r, out := p.walVerify(t)
		if code == 0 || r.OK || len(r.Chains) == 0 {
			t.Fatalf("run %d: wal verify exit %d, want the gap reported: %s", run, code, out)
		}
		for _, c := range r.Chains {
			if len(c.Gaps) != 1 || c.Gaps[0].Start != oldEnd.LSN || c.Gaps[0].End <= c.Gaps[0].Start || c.End.LSN < lsn {
				t.Fatalf("run %d: store %s: gaps %v, end %s; want one gap from the old end %s on and the chain past %s: %s",
					run, c.Store, c.Gaps, c.End.LSN, oldEnd.LSN, lsn, out)
			}
		}
		t.Logf("run %d: gap %s; chain to %s", run, r.Chains[0].Gaps[0], r.Chains[0].End.LSN)
		// Rows in the open segment, stored as a chunk: the slot stops
		// inside that segment, so the next run streams it again from its
		// start over what is stored (the same WAL: a no-op, or a chunk
		// overlapping with the same bytes).
		p.waitChainPast(t, p.writeRows(t, 100))
		stopCleanly(t, arch)
	}
	if out, _ := arch.Output(); strings.Contains(out, "has already been removed") {
		t.Errorf("an archiver asked the server for WAL it had removed:\n%s", out)
	}
}

// chainEnd is where the archive's chains end (the lowest over the stores),
// as `pgbackup wal verify` finds it; it wants the archive whole.
func (p *pitrCluster) chainEnd(t *testing.T) wal.Position {
	t.Helper()
	code, r, out := p.walVerify(t)
	if code != 0 || !r.OK || len(r.Chains) == 0 {
		t.Fatalf("wal verify: exit %d: %s", code, out)
	}
	end := r.Chains[0].End
	for _, c := range r.Chains[1:] {
		if c.End.LSN < end.LSN {
			end = c.End
		}
	}
	return end
}

// writeRows inserts rows into t without switching segments and returns
// where their WAL ends (the flush position once they are committed).
func (p *pitrCluster) writeRows(t *testing.T, rows int) wal.LSN {
	t.Helper()
	if _, err := p.su.Exec(t.Context(), "INSERT INTO t (v) SELECT md5(i::text) FROM generate_series(1, $1) i", rows); err != nil {
		t.Fatal(err)
	}
	return p.serverLSN(t)
}

// waitChainPast waits until every store's chain reaches lsn.
func (p *pitrCluster) waitChainPast(t *testing.T, lsn wal.LSN) {
	t.Helper()
	err := harness.Poll(t.Context(), 30*time.Second, 200*time.Millisecond, func() (bool, error) { return p.chainsPast(t, lsn), nil })
	if err != nil {
		_, _, out := p.walVerify(t)
		t.Fatalf("the archive never reached %s: %v: %s", lsn, err, out)
	}
}
