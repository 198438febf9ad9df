package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/wal"
)

// TestArchiverKilledTwiceUnderLoad: on a server with 1 MiB WAL segments,
// a writer commits a marker every 100 ms and a filler writes about 1 MiB
// of WAL a second, so the WAL crosses segments while the archiver is
// dead. The archiver is SIGKILLed at a random moment and restarted,
// twice (each restart waits out the dead holder's Redis lease, 10 s, so
// several segments go by: the archive's end and the server's position
// differ by megabytes at each restart). Once the load stops and the
// archiver has caught up: `pgbackup wal verify` finds every store's chain
// whole, each segment is stored exactly once as a complete object, and
// pg_waldump finds every acknowledged marker's COMMIT in the archive.
// An archiver resuming from the server's position instead of the
// archive's end fails it with gaps.
func TestArchiverKilledTwiceUnderLoad(t *testing.T) {
	t.Parallel()
	p := newSmallSegmentCluster(t)
	ctx := t.Context()
	arch := p.start("archiver", harness.Archiver)
	if err := arch.WaitLog(ctx, "streaming WAL", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	load, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	w := startMarkerWriter(load, t, p.connect(t), testbench.UniqueName("kill_marker"))
	filled := startFiller(load, t, p.connect(t))

	for kill := 1; kill <= 2; kill++ {
		time.Sleep(time.Duration(1000+rand.IntN(1500)) * time.Millisecond) // a random moment, not an assertion
		if err := arch.Kill(); err != nil {
			t.Fatal(err)
		}
		killedAt := p.serverLSN(t)
		restarted, err := arch.Restart()
		if err != nil {
			t.Fatal(err)
		}
		arch = restarted
		if err := arch.WaitLog(ctx, "streaming WAL", 60*time.Second); err != nil {
			t.Fatalf("restart %d: %v", kill, err)
		}
		t.Logf("kill %d at server LSN %s; the restarted archiver streams again at server LSN %s", kill, killedAt, p.serverLSN(t))
	}
	w.waitMarkers(t, w.count()+10) // the writer outlived both kills
	stopLoad()
	<-w.done
	if err := <-filled; err != nil {
		t.Fatalf("filler: %v", err)
	}

	end := p.serverLSN(t)
	if err := harness.Poll(ctx, 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		_, r, _ := p.walVerify(t)
		for _, c := range r.Chains {
			if c.End.LSN < end {
				return false, nil
			}
		}
		return len(r.Chains) > 0, nil
	}); err != nil {
		code, _, out := p.walVerify(t)
		t.Fatalf("the archive never reached the server's %s: %v; wal verify exit %d: %s", end, err, code, out)
	}
	p.checkNoGap(t, end)
	p.checkSegmentsOnce(t, end)

	commits := archivedCommits(t, p.minio(), p.serverMajor(t))
	for i, m := range w.markers {
		if !commits[m.xid] {
			t.Errorf("marker %d (xid %s) committed but its COMMIT is not in the archive", i, m.xid)
		}
	}
	if len(w.markers) < 30 {
		t.Fatalf("only %d markers committed: the load proves little", len(w.markers))
	}
	t.Logf("%d markers, every COMMIT archived; WAL up to %s (%d segments of 1 MiB)", len(w.markers), end, uint64(end)/smallSegment)
	stopCleanly(t, arch)
}

// connect opens a superuser connection of the test's own.
func (p *pitrCluster) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), p.su.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// serverLSN is the server's flush position now.
func (p *pitrCluster) serverLSN(t *testing.T) wal.LSN {
	t.Helper()
	var s string
	if err := p.su.QueryRow(t.Context(), "SELECT pg_current_wal_flush_lsn()::text").Scan(&s); err != nil {
		t.Fatal(err)
	}
	lsn, err := wal.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// startFiller writes about 1 MiB of WAL a second until ctx ends; the
// channel gets its error (nil when it stopped on ctx).
func startFiller(ctx context.Context, t *testing.T, conn *pgx.Conn) <-chan error {
	t.Helper()
	if _, err := conn.Exec(ctx, "CREATE TABLE filler (v text)"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			_, err := conn.Exec(ctx, "INSERT INTO filler SELECT md5(i::text) FROM generate_series(1, 1200) i")
			if err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		done <- nil
	}()
	return done
}

// checkSegmentsOnce lists the archive's objects in MinIO and wants each
// segment before the one holding end stored exactly once as a complete
// object (chunks aside), from the archive's first segment on.
func (p *pitrCluster) checkSegmentsOnce(t *testing.T, end wal.LSN) {
	t.Helper()
	objs, err := p.minio().List(t.Context(), wal.Root(walTarget))
	if err != nil {
		t.Fatal(err)
	}
	count := map[uint64]int{}
	first := ^uint64(0)
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, wal.Root(walTarget))
		parts := strings.Split(rest, "/")
		if len(parts) != 2 || parts[0] != "00000001" {
			continue // chunks, history files
		}
		name, _, _ := strings.Cut(parts[1], ".")
		_, segno, err := wal.ParseSegmentName(name, smallSegment)
		if err != nil {
			t.Fatalf("object %s: %v", o.Key, err)
		}
		count[segno]++
		first = min(first, segno)
	}
	last := uint64(end)/smallSegment - 1
	if len(count) == 0 || first > last {
		t.Fatalf("no complete segment before %s in the archive", end)
	}
	var problems []string
	for segno := first; segno <= last; segno++ {
		if count[segno] != 1 {
			problems = append(problems, fmt.Sprintf("%s stored %d times", wal.SegmentName(1, segno, smallSegment), count[segno]))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("segments %d to %d: %s", first, last, strings.Join(problems, "; "))
	}
	t.Logf("segments %d to %d each stored once", first, last)
}
