package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
)

// TestRequestsSafeToRepeat: an Idempotency-Key makes create, restore,
// verify and delete return their first response when repeated, and the
// X-Request-ID follows the request into the task and the worker's log.
func TestRequestsSafeToRepeat(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (v int)`, `INSERT INTO t SELECT generate_series(1, 100)`)
	c.startAPI()
	worker := c.start("worker", "worker")

	const rid = "gw-7f3a.42"
	ctx, admin := t.Context(), c.admin()
	create := client.CreateBackupRequest{BackupName: "repeat-1"}
	var r client.Response
	first, err := admin.CreateBackup(ctx, create, client.WithIdempotencyKey("create-repeat-1"), client.WithRequestID(rid), client.WithResponse(&r))
	if err != nil || r.StatusCode != http.StatusAccepted || r.Header.Get("X-Request-ID") != rid {
		t.Fatalf("create = %d %v %s, X-Request-ID %q", r.StatusCode, err, r.Body, r.Header.Get("X-Request-ID"))
	}
	again, err := admin.CreateBackup(ctx, create, client.WithIdempotencyKey("create-repeat-1"), client.WithResponse(&r))
	if err != nil || r.StatusCode != http.StatusAccepted || again.TaskID != first.TaskID || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeated create = %d %v %+v, want the first response %+v", r.StatusCode, err, again, first)
	}
	if _, err := admin.CreateBackup(ctx, client.CreateBackupRequest{BackupName: "repeat-2"}, client.WithIdempotencyKey("create-repeat-1")); client.StatusOf(err) != http.StatusUnprocessableEntity {
		t.Fatalf("same key, another body = %v, want 422", err)
	}
	if _, err := admin.ListBackups(ctx, client.ListBackupsOptions{}, client.WithResponse(&r)); err != nil || r.Header.Get("X-Request-ID") == "" {
		t.Fatalf("list without X-Request-ID = %v, generated ID %q", err, r.Header.Get("X-Request-ID"))
	}
	id := first.TaskID
	st := c.waitTask(id, time.Minute)
	if st.RequestID != rid {
		t.Errorf("task status request_id = %v, want %s", st.RequestID, rid)
	}
	var logged bool
	for _, line := range strings.Split(logText(t, worker), "\n") {
		if strings.Contains(line, `"task_id":"`+id+`"`) && strings.Contains(line, `"request_id":"`+rid+`"`) {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no worker log line carries task %s with request_id %s", id, rid)
	}

	// A refused request frees its key: fixed, it goes through.
	if _, err := admin.CreateBackup(ctx, client.CreateBackupRequest{BackupName: "bad name!"}, client.WithIdempotencyKey("fix-me")); client.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("bad create = %v, want 400", err)
	}
	fixed, err := admin.CreateBackup(ctx, client.CreateBackupRequest{BackupName: "repeat-3"}, client.WithIdempotencyKey("fix-me"), client.WithResponse(&r))
	c.waitTask(c.accepted("fixed create under the same key", &r, fixed, err).TaskID, time.Minute)

	// Without a key a second restore into the same database while the first
	// is queued is a 409; with the key it is the same task.
	c.env.CreateDB(t, c.source+"_copy")
	restore := client.RestoreBackupRequest{BackupName: "repeat-1", TargetDatabase: c.source + "_copy"}
	// twice makes a call twice under one key: both answers name one task.
	twice := func(what, key string, call func(...client.CallOption) (*client.TaskAccepted, error)) string {
		t.Helper()
		k := client.WithIdempotencyKey(key)
		a1, err1 := call(k)
		a2, err2 := call(k)
		if err1 != nil || err2 != nil || a1.TaskID != a2.TaskID {
			t.Fatalf("repeated %s: %+v (%v) then %+v (%v), want one task", what, a1, err1, a2, err2)
		}
		return a1.TaskID
	}
	c.waitTask(twice("restore", "restore-1", func(o ...client.CallOption) (*client.TaskAccepted, error) {
		return admin.RestoreBackup(ctx, restore, o...)
	}), time.Minute)
	c.waitTask(twice("verify", "verify-1", func(o ...client.CallOption) (*client.TaskAccepted, error) {
		return admin.VerifyBackup(ctx, "repeat-1", client.VerifyBackupRequest{}, o...)
	}), time.Minute)
	c.waitTask(twice("delete", "delete-1", func(o ...client.CallOption) (*client.TaskAccepted, error) {
		return admin.DeleteBackup(ctx, "repeat-1", client.DeleteBackupRequest{}, o...)
	}), time.Minute)
	if _, ok := c.listBackups()["repeat-1"]; ok {
		t.Fatal("repeat-1 still listed after its delete")
	}
}
