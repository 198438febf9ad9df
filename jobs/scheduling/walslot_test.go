package scheduling

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/wal"
)

type slotRecords struct{ readings []coord.SlotReading }

func (r *slotRecords) RecordSlot(_ context.Context, _ []string, s coord.SlotReading) error {
	r.readings = append(r.readings, s)
	return nil
}

const keep32MB = 32 << 20

// slotFixture is the walFixture (archive end 0/400000) whose server's
// slot is slot, read through a fake.
func slotFixture(t *testing.T) (*walFixture, *SlotState, *error, *slotRecords) {
	t.Helper()
	f := newWALFixture(t)
	slot := &SlotState{Exists: true, WALStatus: "reserved", KeepSize: keep32MB, SafeWALSize: keep32MB, Current: 4 * testSegSize}
	var err error
	rec := &slotRecords{}
	f.w.Slot = func(context.Context) (SlotState, error) { return *slot, err }
	f.w.SlotName, f.w.SlotLag, f.w.Record = "pgbackup_db1", SlotLagAlert{Percent: 80}, rec
	return f, slot, &err, rec
}

// TestWALWatcherSlotLag: a slot keeping more than 80% of
// max_slot_wal_keep_size raises one wal.slot_lag however many checks see
// it; it resolves once, only under 90% of the threshold; a new episode
// alerts again. Each reading is published.
func TestWALWatcherSlotLag(t *testing.T) {
	t.Parallel()
	f, slot, _, rec := slotFixture(t)
	threshold := int64(keep32MB * 8 / 10)
	steps := []struct {
		lag              int64
		lagged, resolved int
	}{
		{10 << 20, 0, 0},
		{threshold, 0, 0}, // at the threshold, not above
		{threshold + 1, 1, 0},
		{31 << 20, 1, 0},
		{threshold - threshold/20, 1, 0}, // under it, but within 10%
		{20 << 20, 1, 1},
		{21 << 20, 1, 1},
		{30 << 20, 2, 1},
	}
	for i, s := range steps {
		slot.LagBytes = s.lag
		f.check(t)
		if l, r := len(f.events(alert.EventWALSlotLag)), len(f.events(alert.EventWALSlotLagResolved)); l != s.lagged || r != s.resolved {
			t.Fatalf("step %d (lag %d, threshold %d): %d wal.slot_lag and %d resolved, want %d and %d: %+v",
				i, s.lag, threshold, l, r, s.lagged, s.resolved, f.q.events)
		}
	}
	if e := f.events(alert.EventWALSlotLag)[0]; e.Target != "db1" || !strings.Contains(e.Error, "pgbackup_db1") || !strings.Contains(e.Error, "25.6MB") {
		t.Errorf("wal.slot_lag %+v, want target db1, the slot's name and the threshold 25.6MB", e)
	}
	if len(rec.readings) != len(steps) || rec.readings[len(steps)-1].LagBytes != 30<<20 || rec.readings[0].Status != "reserved" {
		t.Errorf("published %+v, want one reading per check, the last 30MB", rec.readings)
	}
	if n := len(f.events(alert.EventWALSlotLost)); n != 0 {
		t.Errorf("%d wal.slot_lost for a slot that was never lost", n)
	}
}

// TestWALWatcherSlotLost: a slot the server invalidated raises one
// wal.slot_lost saying what to do, not one per check; the slot created
// again ends the episode, and losing it again alerts again. The lag
// published for a lost slot is the WAL written past the archive's end.
func TestWALWatcherSlotLost(t *testing.T) {
	t.Parallel()
	f, slot, _, rec := slotFixture(t)
	f.check(t)
	slot.WALStatus, slot.LagBytes, slot.SafeWALSize, slot.Current = "lost", 0, -1, 100*testSegSize
	for range 3 {
		f.check(t)
	}
	lost := f.events(alert.EventWALSlotLost)
	if len(lost) != 1 {
		t.Fatalf("%d wal.slot_lost after three checks of a lost slot, want one: %+v", len(lost), f.q.events)
	}
	for _, want := range []string{"0/400000", "pg_drop_replication_slot('pgbackup_db1')", "restart the archiver", "base backup", "max_slot_wal_keep_size 32.0MB"} {
		if !strings.Contains(lost[0].Error, want) {
			t.Errorf("wal.slot_lost says %q; want it to contain %q", lost[0].Error, want)
		}
	}
	if r := rec.readings[len(rec.readings)-1]; r.Status != "lost" || r.LagBytes != 96*testSegSize {
		t.Errorf("published %+v for the lost slot, want status lost and %d bytes past the archive's end", r, 96*testSegSize)
	}
	if n := len(f.events(alert.EventWALSlotLag)); n != 0 {
		t.Errorf("%d wal.slot_lag for a lost slot (its lag is unknown)", n)
	}
	*slot = SlotState{Exists: true, WALStatus: "reserved", KeepSize: keep32MB, Current: 100 * testSegSize}
	f.check(t)
	f.check(t)
	if n := len(f.events(alert.EventWALSlotLost)); n != 1 {
		t.Fatalf("%d wal.slot_lost once the slot is back, want still one", n)
	}
	slot.WALStatus = "lost"
	f.check(t)
	if n := len(f.events(alert.EventWALSlotLost)); n != 2 {
		t.Fatalf("%d wal.slot_lost after the slot was lost a second time, want two", n)
	}
}

// TestWALWatcherSlotMissing: a slot missing on the server is lost when the
// archive holds WAL (the server keeps none for it), and nothing before the
// archiver ever ran (an empty archive).
func TestWALWatcherSlotMissing(t *testing.T) {
	t.Parallel()
	f, slot, _, _ := slotFixture(t)
	*slot = SlotState{KeepSize: keep32MB, SafeWALSize: -1, Current: 4 * testSegSize}
	f.check(t)
	f.check(t)
	if l := f.events(alert.EventWALSlotLost); len(l) != 1 || !strings.Contains(l[0].Error, "missing") {
		t.Fatalf("wal.slot_lost %+v, want one saying the slot is missing", f.q.events)
	}

	empty, _, _, _ := slotFixture(t)
	*slot = SlotState{KeepSize: keep32MB, SafeWALSize: -1}
	empty.w.Slot = func(context.Context) (SlotState, error) { return *slot, nil }
	empty.w.Scanner = emptyScanner{}
	empty.check(t)
	if len(empty.q.events) != 0 {
		t.Fatalf("alerts for a missing slot of an empty archive: %+v", empty.q.events)
	}
}

type emptyScanner struct{}

func (emptyScanner) Scan(context.Context) ([]wal.Chain, error) { return nil, nil }

// TestWALWatcherSlotServerDown: a server that cannot be asked raises no
// slot alert, and is not asked again before StallAfter.
func TestWALWatcherSlotServerDown(t *testing.T) {
	t.Parallel()
	f, slot, slotErr, _ := slotFixture(t)
	asked := 0
	f.w.Slot = func(context.Context) (SlotState, error) { asked++; return *slot, *slotErr }
	*slotErr = errors.New("no password here")
	slot.WALStatus = "lost"
	f.check(t)
	f.now = f.now.Add(time.Second)
	f.check(t)
	if asked != 1 || len(f.q.events) != 0 {
		t.Fatalf("asked %d times, alerts %+v; want one question and no alert", asked, f.q.events)
	}
	*slotErr = nil
	f.now = f.now.Add(f.w.StallAfter)
	f.check(t)
	if n := len(f.events(alert.EventWALSlotLost)); asked != 2 || n != 1 {
		t.Fatalf("asked %d times, %d wal.slot_lost; want two and one once the server answers", asked, n)
	}
}

func TestSlotLagThreshold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		alert SlotLagAlert
		keep  int64
		want  int64
	}{
		{"percent of the cap", SlotLagAlert{Percent: 80}, 100 << 20, 80 << 20},
		{"bytes win", SlotLagAlert{Bytes: 1 << 30}, 100 << 20, 1 << 30},
		{"percent of unlimited", SlotLagAlert{Percent: 80}, -1, DefaultUnlimitedSlotLagAlert},
		{"off", SlotLagAlert{}, 100 << 20, 0},
	}
	for _, tt := range tests {
		if got := tt.alert.threshold(tt.keep); got != tt.want {
			t.Errorf("%s: threshold = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestServerSlot asks the bench's real PostgreSQL about a slot it does not
// have: the row still comes (missing, with the server's position and
// max_slot_wal_keep_size in bytes), so a missing slot is told from a
// failed question.
func TestServerSlot(t *testing.T) {
	t.Parallel()
	s, err := ServerSlot(benchConn(t), testbench.UniqueName("noslot"))(t.Context())
	if err != nil {
		t.Fatalf("ServerSlot: %v", err)
	}
	if s.Exists || s.Current == 0 || s.KeepSize == 0 || s.SafeWALSize != -1 {
		t.Fatalf("ServerSlot = %+v, want a missing slot, a position, max_slot_wal_keep_size (-1 or bytes), no safe_wal_size", s)
	}
}
