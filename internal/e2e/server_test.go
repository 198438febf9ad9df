package e2e

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
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

	out := c.create(client.CreateBackupRequest{Database: "*", BackupName: "whole-1"})
	c.waitTask(out.TaskID, 2*time.Minute)
	entry := c.listBackups()["whole-1"]
	dbs := entry.Databases
	if entry.Kind != "server" || entry.Database != "*" || !slices.Contains(dbs, "shop") || !slices.Contains(dbs, "audit") {
		t.Fatalf("listed %+v, want a whole-server backup holding shop and audit", entry)
	}

	for _, bad := range []struct {
		req  client.RestoreBackupRequest
		want int
	}{
		{client.RestoreBackupRequest{BackupName: "whole-1", TargetDatabase: "shop"}, http.StatusBadRequest},
		{client.RestoreBackupRequest{BackupName: "whole-1", Replace: true}, http.StatusBadRequest},
		{client.RestoreBackupRequest{BackupName: "whole-1", Databases: []string{"shop", "shop"}}, http.StatusBadRequest},
		{client.RestoreBackupRequest{BackupName: "whole-1", Databases: []string{"no_such_db"}}, http.StatusNotFound},
	} {
		if _, err := c.admin().RestoreBackup(t.Context(), bad.req); client.StatusOf(err) != bad.want {
			t.Errorf("restore %+v = %v, want %d", bad.req, err, bad.want)
		}
	}
	// An empty list of databases, which the typed client omits: raw.
	empty := map[string]any{"backup_name": "whole-1", "databases": []string{}}
	if code, _, body := c.raw(http.MethodPost, "/api/admin/backup/restore", adminToken, nil, empty); code != http.StatusBadRequest {
		t.Errorf("restore %v = %d %s, want 400", empty, code, body)
	}

	// Lose one database, change the other: restoring only the lost one
	// leaves the changed one alone.
	priv.Exec(t, "postgres", "DROP DATABASE shop")
	priv.Exec(t, "audit", "INSERT INTO events VALUES (1000)")
	changedAudit := priv.Fingerprint(t, "audit")
	out = c.restore(client.RestoreBackupRequest{BackupName: "whole-1", Databases: []string{"shop"}})
	st := c.waitTask(out.TaskID, 2*time.Minute)
	if got := result(t, st)["databases"]; !slices.Equal(toStrings(got), []string{"shop"}) {
		t.Errorf("restore result databases %v, want [shop]", got)
	}
	if diff := testbench.DiffFingerprints(priv.Fingerprint(t, "shop"), wantShop); diff != "" {
		t.Fatalf("shop after the restore:\n%s", diff)
	}
	if diff := testbench.DiffFingerprints(priv.Fingerprint(t, "audit"), changedAudit); diff != "" {
		t.Fatalf("audit changed by a restore of shop only:\n%s", diff)
	}
	out = c.restore(client.RestoreBackupRequest{BackupName: "whole-1", Databases: []string{"audit"}, Clean: true})
	c.waitTask(out.TaskID, 2*time.Minute)
	if diff := testbench.DiffFingerprints(priv.Fingerprint(t, "audit"), wantAudit); diff != "" {
		t.Fatalf("audit after a clean restore:\n%s", diff)
	}

	out = c.create(client.CreateBackupRequest{Database: "shop", BackupName: "shop-only"})
	c.waitTask(out.TaskID, 2*time.Minute)
	if _, err := c.admin().RestoreBackup(t.Context(), client.RestoreBackupRequest{BackupName: "shop-only", Databases: []string{"shop"}}); client.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("databases on a one-database backup = %v, want 400", err)
	}
	out = c.remove("whole-1")
	c.waitTask(out.TaskID, time.Minute)
	if objs, err := c.minio().List(t.Context(), "postgres/whole-1"); err != nil || len(objs) != 0 {
		t.Fatalf("after delete MinIO holds %v (%v)", objs, err)
	}
}
