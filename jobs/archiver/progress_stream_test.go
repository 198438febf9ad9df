package archiver_test

import (
	"sync"
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/archiver"
	"github.com/autograph/pgbackup/jobs/archiver/archivertest"
	"github.com/autograph/pgbackup/jobs/wal"
)

// TestStreamerReportsProgress: OnProgress is called while streaming, its
// archived position follows the writes, and an idle server's
// archived_through keeps up with the clock.
func TestStreamerReportsProgress(t *testing.T) {
	t.Parallel()
	p := startPITR(t)
	mem := &archivertest.Memory{SegmentSize: p.segSize}
	var mu sync.Mutex
	var last archiver.Progress
	reports := 0
	cfg := archiver.Config{Conn: p.conn, Slot: "pitr_progress", Archive: mem,
		PartialInterval: 200 * time.Millisecond, StatusInterval: time.Second, ProgressInterval: 100 * time.Millisecond,
		Log: testLog(t), OnProgress: func(pr archiver.Progress) { mu.Lock(); last, reports = pr, reports+1; mu.Unlock() }}
	latest := func() (archiver.Progress, int) { mu.Lock(); defer mu.Unlock(); return last, reports }
	st := run(t, cfg)

	p.exec(t, "CREATE TABLE progress (v text)")
	p.exec(t, "INSERT INTO progress SELECT md5(i::text) FROM generate_series(1, 5000) i")
	target := p.lsn(t, "SELECT pg_switch_wal()::text")
	waitFor(t, 20*time.Second, "progress past "+target.String(), func() bool {
		st.alive(t)
		pr, _ := latest()
		return pr.Archived > target
	})
	pr, _ := latest()
	if pr.ServerEnd < pr.Archived || pr.SlotLagBytes() < 0 || pr.Timeline != 1 || pr.SegmentSize != p.segSize {
		t.Fatalf("progress %+v: want ServerEnd >= Archived, timeline 1, segment size %d", pr, p.segSize)
	}
	if want := wal.SegmentName(1, uint64(pr.Archived-1)/p.segSize, p.segSize); pr.LastSegment() != want {
		t.Errorf("LastSegment = %s, want %s", pr.LastSegment(), want)
	}
	// Idle (nothing written): archived_through follows the clock.
	mark := time.Now()
	defer func() { pr, _ := latest(); t.Logf("last progress %+v lag %d", pr, pr.SlotLagBytes()) }()
	waitFor(t, 10*time.Second, "archived_through to pass "+mark.Format(time.RFC3339Nano), func() bool {
		st.alive(t)
		pr, _ := latest()
		return pr.ArchivedThrough.After(mark) && pr.SlotLagBytes() == 0
	})
	if err := st.stop(); err != nil {
		t.Fatal(err)
	}
	if _, n := latest(); n < 3 {
		t.Errorf("%d progress reports, want several", n)
	}
}
