package archiver

import (
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/wal"
)

func TestThroughTracker(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var tr throughTracker
	if got := tr.advance(100, at(0)); !got.IsZero() {
		t.Fatalf("nothing reported yet: through = %v, want zero (unknown)", got)
	}
	tr.observe(100, at(1))
	if got := tr.advance(100, at(2)); !got.Equal(at(2)) {
		t.Fatalf("caught up: through = %v, want now %v", got, at(2))
	}
	// Idle: the server reports the same end; the archive still holds it.
	tr.observe(100, at(3))
	if got := tr.advance(100, at(4)); !got.Equal(at(4)) {
		t.Fatalf("idle: through = %v, want now %v", got, at(4))
	}
	// Idle and silent (the server sends nothing): still now.
	if got := tr.advance(100, at(4.5)); !got.Equal(at(4.5)) {
		t.Fatalf("idle, no report: through = %v, want now %v", got, at(4.5))
	}
	// Writes the archive has not stored: through stays.
	tr.observe(200, at(5))
	tr.observe(300, at(6))
	if got := tr.advance(150, at(7)); !got.Equal(at(4.5)) {
		t.Fatalf("behind: through = %v, want %v", got, at(4.5))
	}
	// The end reported at 5 s is stored, not the one at 6 s.
	if got := tr.advance(250, at(8)); !got.Equal(at(5)) {
		t.Fatalf("part stored: through = %v, want %v", got, at(5))
	}
	if got := tr.advance(300, at(9)); !got.Equal(at(9)) {
		t.Fatalf("all stored: through = %v, want now %v", got, at(9))
	}
	// Reports closer than the resolution merge, keeping the older time:
	// only storing the newer end claims it.
	tr.observe(400, at(10))
	tr.observe(500, at(10.05))
	if got := tr.advance(400, at(11)); !got.Equal(at(9)) {
		t.Fatalf("merged report: through = %v, want %v (never too early)", got, at(9))
	}
	if got := tr.advance(500, at(12)); !got.Equal(at(12)) {
		t.Fatalf("merged report stored: through = %v, want %v", got, at(12))
	}
}

func TestProgressSegmentAndLag(t *testing.T) {
	t.Parallel()
	const seg = 16 << 20
	p := Progress{Timeline: 1, Archived: wal.LSN(3*seg + 100), ServerEnd: wal.LSN(3*seg + 300), SegmentSize: seg}
	if got := p.SlotLagBytes(); got != 200 {
		t.Errorf("SlotLagBytes = %d, want 200", got)
	}
	if got, want := p.LastSegment(), "000000010000000000000003"; got != want {
		t.Errorf("LastSegment = %s, want %s", got, want)
	}
	p.Archived = wal.LSN(4 * seg) // the segment's end: its last byte is in segment 3
	if got, want := p.LastSegment(), "000000010000000000000003"; got != want {
		t.Errorf("LastSegment at a boundary = %s, want %s", got, want)
	}
	if got := p.SlotLagBytes(); got != 0 {
		t.Errorf("SlotLagBytes ahead of the server's end = %d, want 0", got)
	}
}
