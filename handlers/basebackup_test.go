package handlers

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// baseBackupTargets are a pitr target with daily base backups and a
// target without pitr.
func baseBackupTargets(t *testing.T) *policy.TargetSet {
	t.Helper()
	daily, err := policy.ParseSchedule("@daily")
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.NewTargetSet([]policy.Target{
		{Name: "app", Database: "app", Format: engine.FormatCustom, PITR: true, BaseBackupSchedule: &daily},
		{Name: "plain", Database: "plain", Format: engine.FormatCustom},
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestBaseBackupRoute: an admin's POST for a pitr target answers 202 with
// the task and the backup's name, reserved, and enqueues one backup:base
// whose payload names the target and that backup; an unknown target is
// 404, a target without pitr 400, a viewer 403 and no token 401, none of
// which enqueues anything.
func TestBaseBackupRoute(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, func(d *Deps) { d.Targets = baseBackupTargets(t) })
	before := time.Now().UTC().Truncate(time.Second)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/admin/targets/app/basebackup", nil)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	req.Header.Set("X-Request-ID", "req-base-1")
	f.e.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST basebackup: %d %s, want 202", rec.Code, rec.Body)
	}
	checkBaseBackupSchema(t, rec)
	var got createResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse("20060102_150405", strings.TrimPrefix(got.BackupName, "app_base_"))
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("backup_name %q, want app_base_ and this second (%v)", got.BackupName, err)
	}
	if got.TaskID == "" || got.StatusURL != statusURL(got.TaskID) {
		t.Errorf("answer %+v: want a task id and its status url", got)
	}
	if f.queue.count() != 1 {
		t.Fatalf("%d tasks enqueued, want 1", f.queue.count())
	}
	task := f.queue.tasks[0]
	var p tasks.BaseBackupPayload
	if err := json.Unmarshal(task.Payload(), &p); err != nil {
		t.Fatal(err)
	}
	if task.Type() != tasks.TypeBaseBackup || p != (tasks.BaseBackupPayload{Target: "app", BackupName: got.BackupName}) {
		t.Errorf("enqueued %s %+v, want %s for app named %s, not scheduled", task.Type(), p, tasks.TypeBaseBackup, got.BackupName)
	}
	if owner := f.locks.held[tasks.ScopeName+":"+got.BackupName]; owner != got.TaskID {
		t.Errorf("name %s reserved by %q, want the task %s", got.BackupName, owner, got.TaskID)
	}
	if rid := f.insp.tasks[got.TaskID]; rid == nil {
		t.Errorf("task %s is not in the queue", got.TaskID)
	}
	if !strings.Contains(f.logs.String(), `"request_id":"req-base-1"`) {
		t.Error("the enqueue log line does not carry the request id")
	}

	for _, c := range []struct {
		name, path, token string
		code              int
		says              string
	}{
		{"unknown target", "/api/admin/targets/nope/basebackup", testAdmin, http.StatusNotFound, "not configured"},
		{"no pitr", "/api/admin/targets/plain/basebackup", testAdmin, http.StatusBadRequest, "pitr"},
		{"viewer", "/api/admin/targets/app/basebackup", testViewer, http.StatusForbidden, ""},
		{"no token", "/api/admin/targets/app/basebackup", "", http.StatusUnauthorized, ""},
	} {
		code, body := f.do("POST", c.path, c.token, nil)
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, code, body, c.code, c.says)
		}
	}
	if f.queue.count() != 1 {
		t.Errorf("%d tasks enqueued, want still 1: refused requests enqueue nothing", f.queue.count())
	}
}

// TestTargetsCarryBaseBackupSchedule: the listing gives a pitr target its
// base backup schedule and next run, in the documented schema, and a
// target without pitr neither.
func TestTargetsCarryBaseBackupSchedule(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, func(d *Deps) { d.Targets = baseBackupTargets(t) })
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/admin/targets", nil)
	req.Header.Set("Authorization", "Bearer "+testViewer)
	f.e.ServeHTTP(rec, req)
	checkAgainstOpenAPI(t, compiledOpenAPI(t), loadOpenAPI(t), "targets with base backups", "GET", "/api/admin/targets", rec)
	got := targetsByName(t, rec)
	app := got["app"]
	tomorrow := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	if app.BaseBackupSchedule != "@daily" || app.NextBaseBackup == nil || !app.NextBaseBackup.Equal(tomorrow) {
		t.Errorf("app: base_backup_schedule %q next %v, want @daily next %v", app.BaseBackupSchedule, app.NextBaseBackup, tomorrow)
	}
	if p := got["plain"]; p.BaseBackupSchedule != "" || p.NextBaseBackup != nil {
		t.Errorf("plain: base_backup_schedule %q next %v, want none", p.BaseBackupSchedule, p.NextBaseBackup)
	}
}

func checkBaseBackupSchema(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	checkAgainstOpenAPI(t, compiledOpenAPI(t), loadOpenAPI(t), "base backup", "POST", "/api/admin/targets/{name}/basebackup", rec)
}
