package jobs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/scripts/testbench"
	"github.com/autograph/pgbackup/store"
)

func TestPermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("backup x: %w", engine.ErrInvalid), true},
		{fmt.Errorf("backup x: %w", engine.ErrExists), true},
		{fmt.Errorf("restore: %w", engine.ErrNotFound), true},
		{fmt.Errorf("restore: %w", engine.ErrChecksumMismatch), true},
		{fmt.Errorf("x: %w", pgtool.ErrNoMatchingClient), true},
		{fmt.Errorf("x: %w", errCancelled), true},
		{fmt.Errorf("minio put: %w", store.ErrUnavailable), false},
		{fmt.Errorf("connect: %w", pgtool.ErrUnreachable), false},
		{fmt.Errorf("reserve: %w", ErrBusy), false},
		{errors.New("pg_dump: exit status 1"), false},
	}
	for _, tt := range tests {
		if got := Permanent(tt.err); got != tt.want {
			t.Errorf("Permanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestRetryDelayGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	f := RetryDelay(time.Second)
	for n, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 20: 10 * time.Minute} {
		for range 20 {
			d := f(n, nil, nil)
			if d < want*8/10 || d > want*12/10 {
				t.Fatalf("RetryDelay(1s)(%d) = %s, want %s ±20%%", n, d, want)
			}
		}
	}
}

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

func TestLocksAgainstRedis(t *testing.T) {
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 15})
	defer rdb.Close()
	l := NewLocks(rdb)
	ctx := context.Background()
	key := testbench.UniqueName("lockdb")
	if err := l.Acquire(ctx, KindRestore, key, "task-a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx, KindRestore, key, "task-a", time.Minute); err != nil {
		t.Fatalf("holder re-acquiring: %v", err)
	}
	err := l.Acquire(ctx, KindRestore, key, "task-b", time.Minute)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Holder != "task-a" || !errors.Is(err, ErrBusy) {
		t.Fatalf("second owner: err = %v, want BusyError held by task-a", err)
	}
	// Only the holder can release.
	_ = l.Release(ctx, KindRestore, key, "task-b")
	if err := l.Acquire(ctx, KindRestore, key, "task-b", time.Minute); !errors.Is(err, ErrBusy) {
		t.Fatalf("release by a non-holder freed the lock: %v", err)
	}
	_ = l.Release(ctx, KindRestore, key, "task-a")
	if err := l.Acquire(ctx, KindRestore, key, "task-b", time.Minute); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if c, _ := l.Cancelled(ctx, key); c {
		t.Fatal("task cancelled before anyone cancelled it")
	}
	_ = l.MarkCancelled(ctx, key, time.Minute)
	if c, _ := l.Cancelled(ctx, key); !c {
		t.Fatal("MarkCancelled not seen")
	}
}

func TestTaskConstructorsSetExplicitOptions(t *testing.T) {
	env := testbench.Require(t)
	redisOpt := asynq.RedisClientOpt{Addr: env.RedisAddr, DB: 14}
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	o := Options{MaxRetry: 3, Retention: 48 * time.Hour, BackupTimeout: 5 * time.Hour, RestoreTimeout: 4 * time.Hour, DeleteTimeout: time.Minute}
	cases := []struct {
		task    func() (*asynq.Task, error)
		queue   string
		timeout time.Duration
	}{
		{func() (*asynq.Task, error) { return NewTask(BackupPayload{BackupName: "a"}, o) }, QueueBackup, 5 * time.Hour},
		{func() (*asynq.Task, error) { return NewTask(RestorePayload{BackupName: "a"}, o) }, QueueRestore, 4 * time.Hour},
		{func() (*asynq.Task, error) { return NewTask(DeletePayload{BackupName: "a"}, o) }, QueueMaintenance, time.Minute},
		{func() (*asynq.Task, error) { return NewTask(VerifyPayload{BackupName: "a"}, o) }, QueueMaintenance, 5 * time.Hour},
	}
	for _, c := range cases {
		task, err := c.task()
		if err != nil {
			t.Fatal(err)
		}
		info, err := client.Enqueue(task, asynq.ProcessIn(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if info.Queue != c.queue || info.Timeout != c.timeout || info.MaxRetry != 3 || info.Retention != 48*time.Hour {
			t.Errorf("%s: queue %s timeout %s max retry %d retention %s; want %s, %s, 3, 48h",
				task.Type(), info.Queue, info.Timeout, info.MaxRetry, info.Retention, c.queue, c.timeout)
		}
	}
	insp := asynq.NewInspector(redisOpt)
	defer insp.Close()
	for _, q := range AllQueues {
		_ = insp.DeleteQueue(q, true)
	}
}

func TestSigningKeyFingerprintIsSharedThroughRedis(t *testing.T) {
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 13})
	defer rdb.Close()
	ctx := context.Background()
	rdb.Del(ctx, signingKeyFingerprint)
	t.Cleanup(func() { rdb.Del(context.Background(), signingKeyFingerprint) })
	l := NewLocks(rdb)
	if err := l.CheckSigningKey(ctx, "", nil); err != nil {
		t.Fatalf("no key anywhere: %v", err)
	}
	if err := l.CheckSigningKey(ctx, "aaaa", nil); err != nil {
		t.Fatalf("first key: %v", err)
	}
	if err := l.CheckSigningKey(ctx, "aaaa", nil); err != nil {
		t.Fatalf("same key again: %v", err)
	}
	if err := l.CheckSigningKey(ctx, "bbbb", nil); !errors.Is(err, ErrSigningKeyMismatch) {
		t.Fatalf("another key: err = %v, want ErrSigningKeyMismatch", err)
	}
	if err := l.CheckSigningKey(ctx, "", nil); !errors.Is(err, ErrSigningKeyMismatch) {
		t.Fatalf("no key while the deployment has one: err = %v, want ErrSigningKeyMismatch", err)
	}
	// Rotation: the new key names the recorded one as old.
	if err := l.CheckSigningKey(ctx, "bbbb", []string{"aaaa"}); err != nil {
		t.Fatalf("rotation: %v", err)
	}
	if err := l.CheckSigningKey(ctx, "aaaa", nil); !errors.Is(err, ErrSigningKeyMismatch) {
		t.Fatalf("the old key after rotation: err = %v, want ErrSigningKeyMismatch", err)
	}
}

type fixedLister struct{ names []string }

func (f fixedLister) List(context.Context, []string) ([]engine.Entry, error) {
	var out []engine.Entry
	for _, n := range f.names {
		out = append(out, engine.Entry{Manifest: engine.Manifest{Name: engine.MustParseName(n)}})
	}
	return out, nil
}

func TestNameIndexIsSureOnlyWhenItCanBe(t *testing.T) {
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 12})
	defer rdb.Close()
	ctx := context.Background()
	listed, fresh, gone := testbench.UniqueName("listed"), testbench.UniqueName("fresh"), testbench.UniqueName("gone")
	t.Cleanup(func() { rdb.Del(context.Background(), createdKey(fresh), deletedKey(gone), createdKey(gone)) })
	x := NewNameIndex(fixedLister{[]string{listed, gone}}, rdb, time.Hour, logrus.NewEntry(logrus.New()))
	if _, sure, err := x.Taken(ctx, listed); err != nil || sure {
		t.Fatalf("before any listing: sure = %v, %v; want unsure", sure, err)
	}
	if err := x.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(name string, wantTaken, wantSure bool) {
		t.Helper()
		taken, sure, err := x.Taken(ctx, name)
		if err != nil || taken != wantTaken || sure != wantSure {
			t.Fatalf("Taken(%s) = %v, %v, %v; want %v, %v", name, taken, sure, err, wantTaken, wantSure)
		}
	}
	check(listed, true, true)
	check(fresh, false, true)
	st := NewState(rdb)
	if err := st.MarkCreated(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	check(fresh, true, true) // completed since the listing
	if err := st.MarkDeleted(ctx, gone); err != nil {
		t.Fatal(err)
	}
	check(gone, false, false) // deleted since: ask the stores
}
