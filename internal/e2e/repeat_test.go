package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
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
	create := map[string]any{"backup_name": "repeat-1"}
	code, h, first := c.send(http.MethodPost, "/api/admin/backup/create", adminToken, map[string]string{"Idempotency-Key": "create-repeat-1", "X-Request-ID": rid}, create)
	if code != http.StatusAccepted || h.Get("X-Request-ID") != rid {
		t.Fatalf("create = %d %v, X-Request-ID %q", code, first, h.Get("X-Request-ID"))
	}
	code, h, again := c.send(http.MethodPost, "/api/admin/backup/create", adminToken, map[string]string{"Idempotency-Key": "create-repeat-1"}, create)
	if code != http.StatusAccepted || again["task_id"] != first["task_id"] || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeated create = %d %v, want the first response %v", code, again, first)
	}
	if code, _, out := c.send(http.MethodPost, "/api/admin/backup/create", adminToken, map[string]string{"Idempotency-Key": "create-repeat-1"}, map[string]any{"backup_name": "repeat-2"}); code != http.StatusUnprocessableEntity {
		t.Fatalf("same key, another body = %d %v, want 422", code, out)
	}
	if code, h, _ := c.send(http.MethodGet, "/api/admin/backup/list", adminToken, nil, nil); code != http.StatusOK || h.Get("X-Request-ID") == "" {
		t.Fatalf("list without X-Request-ID = %d, generated ID %q", code, h.Get("X-Request-ID"))
	}
	id := first["task_id"].(string)
	st := c.waitTask(id, time.Minute)
	if st["request_id"] != rid {
		t.Errorf("task status request_id = %v, want %s", st["request_id"], rid)
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
	if code, _, _ := c.send(http.MethodPost, "/api/admin/backup/create", adminToken, map[string]string{"Idempotency-Key": "fix-me"}, map[string]any{"backup_name": "bad name!"}); code != http.StatusBadRequest {
		t.Fatalf("bad create = %d, want 400", code)
	}
	if code, _, out := c.send(http.MethodPost, "/api/admin/backup/create", adminToken, map[string]string{"Idempotency-Key": "fix-me"}, map[string]any{"backup_name": "repeat-3"}); code != http.StatusAccepted {
		t.Fatalf("fixed create under the same key = %d %v, want 202", code, out)
	} else {
		c.waitTask(out["task_id"].(string), time.Minute)
	}

	// Without a key a second restore into the same database while the first
	// is queued is a 409; with the key it is the same task.
	c.env.CreateDB(t, c.source+"_copy")
	restore := map[string]any{"backup_name": "repeat-1", "target_database": c.source + "_copy"}
	_, _, r1 := c.send(http.MethodPost, "/api/admin/backup/restore", adminToken, map[string]string{"Idempotency-Key": "restore-1"}, restore)
	_, _, r2 := c.send(http.MethodPost, "/api/admin/backup/restore", adminToken, map[string]string{"Idempotency-Key": "restore-1"}, restore)
	if r1["task_id"] == nil || r1["task_id"] != r2["task_id"] {
		t.Fatalf("repeated restore: %v then %v, want one task", r1, r2)
	}
	c.waitTask(r1["task_id"].(string), time.Minute)
	_, _, v1 := c.send(http.MethodPost, "/api/admin/backup/repeat-1/verify", adminToken, map[string]string{"Idempotency-Key": "verify-1"}, nil)
	_, _, v2 := c.send(http.MethodPost, "/api/admin/backup/repeat-1/verify", adminToken, map[string]string{"Idempotency-Key": "verify-1"}, nil)
	if v1["task_id"] == nil || v1["task_id"] != v2["task_id"] {
		t.Fatalf("repeated verify: %v then %v, want one task", v1, v2)
	}
	c.waitTask(v1["task_id"].(string), time.Minute)
	_, _, d1 := c.send(http.MethodDelete, "/api/admin/backup/repeat-1", adminToken, map[string]string{"Idempotency-Key": "delete-1"}, nil)
	_, _, d2 := c.send(http.MethodDelete, "/api/admin/backup/repeat-1", adminToken, map[string]string{"Idempotency-Key": "delete-1"}, nil)
	if d1["task_id"] == nil || d1["task_id"] != d2["task_id"] {
		t.Fatalf("repeated delete: %v then %v, want one task", d1, d2)
	}
	c.waitTask(d1["task_id"].(string), time.Minute)
	if _, ok := c.listBackups()["repeat-1"]; ok {
		t.Fatal("repeat-1 still listed after its delete")
	}
}
