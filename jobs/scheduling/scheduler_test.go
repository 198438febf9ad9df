package scheduling

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

func mustSchedule(t *testing.T, spec string) *policy.Schedule {
	t.Helper()
	s, err := policy.ParseSchedule(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// TestBaseBackupsScheduledPerSlot: a pitr target with a base backup
// schedule gets one periodic backup:base on it, scheduled, its name left
// to the worker; each slot's task ID is the base backup name of the
// slot's start, the same all through the slot; a target without one gets
// no base backups.
func TestBaseBackupsScheduledPerSlot(t *testing.T) {
	t.Parallel()
	targets, err := policy.NewTargetSet([]policy.Target{
		{Name: "app", Database: "app", Format: engine.FormatCustom, Schedule: mustSchedule(t, "@every 1h"),
			PITR: true, BaseBackupSchedule: mustSchedule(t, "@every 2h")},
		{Name: "db", Database: "db", Format: engine.FormatCustom, Schedule: mustSchedule(t, "@every 1h"),
			DrillSchedule: mustSchedule(t, "@daily")},
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := entries(targets, tasks.Options{MaxRetry: 3, Retention: time.Hour, BackupTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var base []entry
	for _, e := range list {
		if e.task.Type() == tasks.TypeBaseBackup {
			base = append(base, e)
		}
	}
	if len(list) != 4 || len(base) != 1 {
		t.Fatalf("%d entries, %d of them base backups (%+v); want 4 (two backups, a drill, a base backup) and 1", len(list), len(base), list)
	}
	e := base[0]
	var p tasks.BaseBackupPayload
	if err := json.Unmarshal(e.task.Payload(), &p); err != nil {
		t.Fatal(err)
	}
	if e.target != "app" || e.spec != "@every 2h" || p != (tasks.BaseBackupPayload{Target: "app", Scheduled: true}) {
		t.Errorf("base backup entry %s %q %+v, want app's on @every 2h, scheduled, unnamed", e.target, e.spec, p)
	}
	for _, c := range []struct{ now, want string }{
		{"2026-12-08T02:00:00Z", "app_base_20261208_020000"},
		{"2026-12-08T03:59:59Z", "app_base_20261208_020000"},
		{"2026-12-08T04:00:01Z", "app_base_20261208_040000"},
	} {
		now, _ := time.Parse(time.RFC3339, c.now)
		if id, ok := slotTaskID(targets, e.task, now); !ok || id != c.want {
			t.Errorf("at %s: task ID %q, %v; want %q", c.now, id, ok, c.want)
		}
	}
	// Another target's base backup (not scheduled there) keeps asynq's ID.
	other, err := tasks.NewTask(tasks.BaseBackupPayload{Target: "db", Scheduled: true}, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := slotTaskID(targets, other, time.Now()); ok {
		t.Errorf("db's base backup got slot ID %q; db has no base backup schedule", id)
	}
	if _, ok := slotTaskID(targets, asynq.NewTask(tasks.TypeBaseBackup, []byte("{")), time.Now()); ok {
		t.Error("a payload that is not JSON got a slot ID")
	}
}
