package policy

import (
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
)

func TestIntervalSchedule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		hours   int
		spec    string
		slot    time.Duration
		wantErr bool
	}{
		{24, "0 0 * * *", 24 * time.Hour, false},
		{6, "0 */6 * * *", 6 * time.Hour, false},
		{1, "0 */1 * * *", time.Hour, false},
		{5, "@every 5h", 5 * time.Hour, false},
		{48, "@every 48h", 48 * time.Hour, false},
		{0, "", 0, true},
	}
	for _, tt := range tests {
		got, err := IntervalSchedule(tt.hours)
		if (err != nil) != tt.wantErr || got.Spec != tt.spec || got.Slot != tt.slot {
			t.Errorf("hours=%d: got %q / %s, %v; want %q / %s (error %v)", tt.hours, got.Spec, got.Slot, err, tt.spec, tt.slot, tt.wantErr)
		}
	}
}

func TestParseScheduleDerivesSlotAndRefusesBadSpecs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spec    string
		slot    time.Duration
		wantErr bool
	}{
		{"daily at 3", "0 3 * * *", 24 * time.Hour, false},
		{"every 5 minutes", "*/5 * * * *", 5 * time.Minute, false},
		{"twice a day, unevenly", "0 3,4 * * *", 23 * time.Hour, false},
		{"weekly", "@weekly", 7 * 24 * time.Hour, false},
		{"every 2s", "@every 2s", 2 * time.Second, false},
		{"every soon", "@every soon", 0, true},
		{"too short", "@every 10ms", 0, true},
		{"six fields", "0 0 3 * * *", 0, true},
		{"out of range", "0 25 * * *", 0, true},
		{"garbage", "tomorrow", 0, true},
		{"never fires", "0 0 30 2 *", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSchedule(tt.spec)
		if (err != nil) != tt.wantErr || got.Slot != tt.slot {
			t.Errorf("%s: ParseSchedule(%q) = slot %s, err %v; want slot %s, error %v", tt.name, tt.spec, got.Slot, err, tt.slot, tt.wantErr)
		}
	}
}

func TestCronSlotIsTheLatestRun(t *testing.T) {
	t.Parallel()
	s, err := ParseSchedule("30 2,14 * * *")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ at, want string }{
		{"2026-03-01T02:30:00Z", "autograph_scheduled_20260301_023000"},
		{"2026-03-01T02:30:01.5Z", "autograph_scheduled_20260301_023000"},
		{"2026-03-01T14:29:59Z", "autograph_scheduled_20260301_023000"},
		{"2026-03-01T14:30:00Z", "autograph_scheduled_20260301_143000"},
		{"2026-03-02T01:00:00Z", "autograph_scheduled_20260301_143000"},
	}
	for _, tt := range tests {
		at, _ := time.Parse(time.RFC3339Nano, tt.at)
		if got := s.SlotName(at); got != tt.want {
			t.Errorf("SlotName(%s) = %s, want %s", tt.at, got, tt.want)
		}
	}
}

func TestSlotNameIsTheSameAnywhereInTheSlot(t *testing.T) {
	t.Parallel()
	s, err := IntervalSchedule(6)
	if err != nil {
		t.Fatal(err)
	}
	a := s.SlotName(time.Date(2026, 3, 1, 6, 0, 0, 3e6, time.UTC))
	// 11:59:59 at UTC+5 is 06:59:59 UTC: same slot, whatever the zone.
	b := s.SlotName(time.Date(2026, 3, 1, 11, 59, 59, 0, time.FixedZone("UTC+5", 5*3600)))
	if a != "autograph_scheduled_20260301_060000" {
		t.Fatalf("SlotName = %s, want autograph_scheduled_20260301_060000", a)
	}
	if b != a {
		t.Fatalf("two moments of one slot named %s and %s", a, b)
	}
	if err := engine.ValidateName(a); err != nil {
		t.Fatalf("slot name is not a valid backup name: %v", err)
	}
}

func TestAge(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name                   string
		lastSuccess, firstSeen time.Time
		want                   time.Duration
	}{
		{"newest good backup", now.Add(-2 * time.Hour), now.Add(-48 * time.Hour), 2 * time.Hour},
		{"none yet: since first watched", time.Time{}, now.Add(-3 * time.Hour), 3 * time.Hour},
		{"nothing known", time.Time{}, time.Time{}, 0},
	}
	for _, tt := range tests {
		if got := Age(tt.lastSuccess, tt.firstSeen, now); got != tt.want {
			t.Errorf("%s: Age = %s, want %s", tt.name, got, tt.want)
		}
	}
}
