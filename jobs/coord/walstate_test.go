package coord

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/internal/testbench"
)

func TestRecoveryPointIsTheLaterOfBackupAndWAL(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		st   TargetStatus
		want time.Duration
	}{
		{"dump only", TargetStatus{LastSuccess: now.Add(-time.Hour)}, time.Hour},
		{"wal newer", TargetStatus{LastSuccess: now.Add(-time.Hour), WAL: &WALStatus{ArchivedThrough: now.Add(-3 * time.Second)}}, 3 * time.Second},
		{"stale wal, newer dump", TargetStatus{LastSuccess: now.Add(-time.Minute), WAL: &WALStatus{ArchivedThrough: now.Add(-time.Hour)}}, time.Minute},
		{"wal, no dump", TargetStatus{FirstSeen: now.Add(-time.Hour), WAL: &WALStatus{ArchivedThrough: now.Add(-time.Second)}}, time.Second},
	}
	for _, tt := range tests {
		if got := tt.st.Age(now); got != tt.want {
			t.Errorf("%s: Age = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestRecordWALRoundTrips(t *testing.T) {
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 15})
	defer rdb.Close()
	s := NewState(rdb)
	ctx := context.Background()
	a, b := testbench.UniqueName("wala"), testbench.UniqueName("walb")
	first := time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC()
	w := WALStatus{Archive: a, Timeline: 1, ArchivedLSN: "0/3000000", ArchivedThrough: first, ServerLSN: "0/3000100",
		SlotLagBytes: 256, LastSegment: "000000010000000000000003", Updated: first}
	if err := s.RecordWAL(ctx, []string{a, b}, w); err != nil {
		t.Fatal(err)
	}
	later := first.Add(30 * time.Second)
	w.ArchivedThrough, w.Updated, w.ArchivedLSN = later, later, "0/3000100"
	if err := s.RecordWAL(ctx, []string{a, b}, w); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordWALGaps(ctx, []string{a, b}, 2, "0/1000000", later); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{a, b} {
		st, err := s.Status(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		want := w
		want.Started = first // the first publication, kept
		want.Gaps, want.OldestLSN, want.GapsChecked = 2, "0/1000000", later
		if st.WAL == nil || *st.WAL != want {
			t.Fatalf("%s: WAL = %+v, want %+v", target, st.WAL, want)
		}
	}
	st, err := s.Status(ctx, testbench.UniqueName("nowal"))
	if err != nil {
		t.Fatal(err)
	}
	if st.WAL != nil {
		t.Fatalf("a target no archiver published: WAL = %+v, want nil", st.WAL)
	}
}

func TestWALStatusJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b, err := json.Marshal(WALStatus{Archive: "db", Timeline: 2, ArchivedLSN: "0/10", ArchivedThrough: at, ServerLSN: "0/20",
		SlotLagBytes: 16, LastSegment: "000000020000000000000000", Updated: at, Started: at.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"archive":"db","timeline":2,"archived_lsn":"0/10","archived_through":"2026-01-02T03:04:05Z","server_lsn":"0/20","slot_lag_bytes":16,"last_segment":"000000020000000000000000","updated":"2026-01-02T03:04:05Z","started":"2026-01-02T02:04:05Z","gaps":0,"oldest_lsn":"","gaps_checked":"0001-01-01T00:00:00Z"}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
}

// TestRecordSlotNewerLagWins: the slot lag a target shows is the newer of
// the archiver's report and the scheduler's reading of the slot, so a dead
// archiver's last (small) value does not hide the lag growing.
func TestRecordSlotNewerLagWins(t *testing.T) {
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 15})
	defer rdb.Close()
	s := NewState(rdb)
	ctx := context.Background()
	a := testbench.UniqueName("walslot")
	first := time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC()
	w := WALStatus{Archive: a, Timeline: 1, ArchivedLSN: "0/3000000", ServerLSN: "0/3000100", SlotLagBytes: 256, Updated: first}
	if err := s.RecordWAL(ctx, []string{a}, w); err != nil {
		t.Fatal(err)
	}
	lag := func() (int64, string) {
		t.Helper()
		st, err := s.Status(ctx, a)
		if err != nil || st.WAL == nil {
			t.Fatalf("Status = %+v, %v", st, err)
		}
		return st.WAL.SlotLagBytes, st.WAL.SlotStatus
	}
	if got, _ := lag(); got != 256 {
		t.Fatalf("slot lag %d, want the archiver's 256", got)
	}
	if err := s.RecordSlot(ctx, []string{a}, SlotReading{LagBytes: 64 << 20, Status: "extended", At: first.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got, status := lag(); got != 64<<20 || status != "extended" {
		t.Fatalf("after the scheduler's newer reading: lag %d (%s), want %d (extended)", got, status, 64<<20)
	}
	w.Updated, w.SlotLagBytes = first.Add(2*time.Minute), 512
	if err := s.RecordWAL(ctx, []string{a}, w); err != nil {
		t.Fatal(err)
	}
	if got, _ := lag(); got != 512 {
		t.Fatalf("after the archiver's newer report: lag %d, want 512", got)
	}
}
