package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
)

// TestRequestsSafeToRepeat: an Idempotency-Key makes create, restore,
// verify and delete return their first response when repeated, and the
// X-Request-ID follows the request into the task and the worker's log.
func TestRequestsSafeToRepeat(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (v int)`, `INSERT INTO t SELECT generate_series(1, 100)`)
	api := c.startAPI()
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
	checkAuditRequestIDs(t, c, api, first.TaskID, rid, r.Header.Get("X-Request-ID"))
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

// checkAuditRequestIDs: the audit trail (GET /api/admin/audit) and the
// API's audit log lines carry each admin action's request ID, the one its
// response returned: the first create's was the caller's (sent), the
// replay's one the API made (only known from the response header).
func checkAuditRequestIDs(t *testing.T, c *cluster, api *harness.Proc, task, sent, made string) {
	t.Helper()
	if made == "" || made == sent {
		t.Fatalf("replay's X-Request-ID %q, want a new one the API made", made)
	}
	trail := must(c.admin().Audit(t.Context(), 100))(t)
	seen := map[string]bool{}
	for _, e := range trail.Entries {
		if e.TaskID == task && e.Action == "POST /api/admin/backup/create" {
			seen[e.RequestID] = true
		}
	}
	if len(seen) != 2 || !seen[sent] || !seen[made] {
		t.Errorf("audit trail request IDs for task %s = %v, want exactly {%s, %s}", task, seen, sent, made)
	}
	logged := map[string]bool{}
	for _, line := range strings.Split(logText(t, api), "\n") {
		var l struct {
			Audit     bool   `json:"audit"`
			Task      string `json:"task_id"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Audit && l.Task == task {
			logged[l.RequestID] = true
		}
	}
	if len(logged) != 2 || !logged[sent] || !logged[made] {
		t.Errorf("audit log lines' request IDs for task %s = %v, want exactly {%s, %s}", task, logged, sent, made)
	}
}

// TestIdempotencyKeysPerTokenAndExpiring: an Idempotency-Key belongs to
// the token that sent it (another token's same key and request makes its
// own task), and it is free again once API_IDEMPOTENCY_TTL is over (set to
// 3 s here; the test waits on the condition, not for a fixed time).
func TestIdempotencyKeysPerTokenAndExpiring(t *testing.T) {
	t.Parallel()
	const otherAdmin, ttl = "e2e-admin-token-second-0123456789", 3 * time.Second
	c := newCluster(t, "API_ADMIN_TOKENS="+adminToken+","+otherAdmin, "API_IDEMPOTENCY_TTL="+ttl.String())
	c.env.CreateDB(t, c.source)
	c.startAPI()
	c.start("worker", "worker")
	ctx := t.Context()
	c.waitTask(c.create(client.CreateBackupRequest{BackupName: "idem-1"}).TaskID, time.Minute)

	// Verify is not reserved per backup, so every call that is not a replay
	// is a new task.
	verify := func(token string, req client.VerifyBackupRequest) (*client.TaskAccepted, client.Response, time.Time) {
		t.Helper()
		var r client.Response
		a, err := c.api(token).VerifyBackup(ctx, "idem-1", req, client.WithIdempotencyKey("same-key"), client.WithResponse(&r))
		return c.accepted("verify", &r, a, err), r, time.Now()
	}
	mine, _, at := verify(adminToken, client.VerifyBackupRequest{})
	again, r, _ := verify(adminToken, client.VerifyBackupRequest{})
	if again.TaskID != mine.TaskID || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("same token, same key: task %s (replayed %q), want the first task %s", again.TaskID, r.Header.Get("Idempotent-Replayed"), mine.TaskID)
	}
	theirs, r, _ := verify(otherAdmin, client.VerifyBackupRequest{})
	if theirs.TaskID == mine.TaskID || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("another token, same key: task %s (replayed %q), want a task of its own, not %s", theirs.TaskID, r.Header.Get("Idempotent-Replayed"), mine.TaskID)
	}
	if _, err := c.admin().VerifyBackup(ctx, "idem-1", client.VerifyBackupRequest{From: "local"}, client.WithIdempotencyKey("same-key")); client.StatusOf(err) != http.StatusUnprocessableEntity {
		t.Fatalf("same token and key, another body = %v, want 422", err)
	}

	// Replayed until the TTL is over, then a new task.
	var fresh *client.TaskAccepted
	waitFor(t, 20*time.Second, "the Idempotency-Key to expire", func() bool {
		fresh, _, _ = verify(adminToken, client.VerifyBackupRequest{})
		return fresh.TaskID != mine.TaskID
	})
	if waited := time.Since(at); waited < ttl/2 {
		t.Errorf("the key was free again after %s, want about %s", waited, ttl)
	}
	for _, id := range []string{mine.TaskID, theirs.TaskID, fresh.TaskID} {
		c.waitTask(id, time.Minute)
	}
}
