package e2e

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/testbench"
)

// TestWholeServerThroughTheAPI backs up every database of a server (one of
// its own: the shared one has other tests' databases coming and going) and
// restores chosen ones, each under its own name.
func TestWholeServerThroughTheAPI(t *testing.T) {
	t.Parallel()
	priv := testbench.Require(t).StartPrivate(t)
	c := newClusterOn(t, priv)
	priv.Exec(t, "postgres", "CREATE DATABASE "+c.source, "CREATE DATABASE shop", "CREATE DATABASE audit")
	priv.Exec(t, "shop", "CREATE TABLE orders (id int PRIMARY KEY, item text)", "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 300) g")
	priv.Exec(t, "audit", "CREATE TABLE events (id int PRIMARY KEY)", "INSERT INTO events SELECT generate_series(1, 50)")
	wantShop, wantAudit := priv.Fingerprint(t, "shop"), priv.Fingerprint(t, "audit")
	c.startAPI()
	c.start("worker", "worker")

	out := c.mustCall(http.MethodPost, "/api/admin/backup/create", map[string]any{"database": "*", "backup_name": "whole-1"}, http.StatusAccepted)
	c.waitTask(out["task_id"].(string), 2*time.Minute)
	entry := c.listBackups()["whole-1"]
	dbs, _ := entry["databases"].([]any)
	if entry["kind"] != "server" || entry["database"] != "*" || !slices.Contains(dbs, any("shop")) || !slices.Contains(dbs, any("audit")) {
		t.Fatalf("listed %v, want a whole-server backup holding shop and audit", entry)
	}

	for _, bad := range []struct {
		body map[string]any
		want int
	}{
		{map[string]any{"backup_name": "whole-1", "target_database": "shop"}, http.StatusBadRequest},
		{map[string]any{"backup_name": "whole-1", "replace": true}, http.StatusBadRequest},
		{map[string]any{"backup_name": "whole-1", "databases": []string{}}, http.StatusBadRequest},
		{map[string]any{"backup_name": "whole-1", "databases": []string{"shop", "shop"}}, http.StatusBadRequest},
		{map[string]any{"backup_name": "whole-1", "databases": []string{"no_such_db"}}, http.StatusNotFound},
	} {
		if code, body := c.call(http.MethodPost, "/api/admin/backup/restore", adminToken, bad.body); code != bad.want {
			t.Errorf("restore %v = %d %v, want %d", bad.body, code, body, bad.want)
		}
	}

	// Lose one database, change the other: restoring only the lost one
	// leaves the changed one alone.
	priv.Exec(t, "postgres", "DROP DATABASE shop")
	priv.Exec(t, "audit", "INSERT INTO events VALUES (1000)")
	changedAudit := priv.Fingerprint(t, "audit")
	out = c.mustCall(http.MethodPost, "/api/admin/backup/restore", map[string]any{"backup_name": "whole-1", "databases": []string{"shop"}}, http.StatusAccepted)
	st := c.waitTask(out["task_id"].(string), 2*time.Minute)
	if got := st["result"].(map[string]any)["databases"]; !slices.Equal(toStrings(got), []string{"shop"}) {
		t.Errorf("restore result databases %v, want [shop]", got)
	}
	if diff := testbench.DiffFingerprints(priv.Fingerprint(t, "shop"), wantShop); diff != "" {
		t.Fatalf("shop after the restore:\n%s", diff)
	}
	if diff := testbench.DiffFingerprints(priv.Fingerprint(t, "audit"), changedAudit); diff != "" {
		t.Fatalf("audit changed by a restore of shop only:\n%s", diff)
	}
	out = c.mustCall(http.MethodPost, "/api/admin/backup/restore", map[string]any{"backup_name": "whole-1", "databases": []string{"audit"}, "clean": true}, http.StatusAccepted)
	c.waitTask(out["task_id"].(string), 2*time.Minute)
	if diff := testbench.DiffFingerprints(priv.Fingerprint(t, "audit"), wantAudit); diff != "" {
		t.Fatalf("audit after a clean restore:\n%s", diff)
	}

	out = c.mustCall(http.MethodPost, "/api/admin/backup/create", map[string]any{"database": "shop", "backup_name": "shop-only"}, http.StatusAccepted)
	c.waitTask(out["task_id"].(string), 2*time.Minute)
	if code, _ := c.call(http.MethodPost, "/api/admin/backup/restore", adminToken, map[string]any{"backup_name": "shop-only", "databases": []string{"shop"}}); code != http.StatusBadRequest {
		t.Errorf("databases on a one-database backup = %d, want 400", code)
	}
	out = c.mustCall(http.MethodDelete, "/api/admin/backup/whole-1", nil, http.StatusAccepted)
	c.waitTask(out["task_id"].(string), time.Minute)
	if objs, err := c.minio().List(t.Context(), "postgres/whole-1"); err != nil || len(objs) != 0 {
		t.Fatalf("after delete MinIO holds %v (%v)", objs, err)
	}
}
