package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
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

	// Without clean, a restore that reaches a database holding tables is
	// refused before anything is touched: shop, which comes first and
	// would restore fine, is not created, and the task fails at its first
	// attempt (the error class is permanent) through the command line.
	detail := refusedByCLI(t, c, "restore", "whole-1", "--databases", "shop,audit", "--wait")
	for _, want := range []string{"database audit", `"clean": true`, `"databases"`} {
		if !strings.Contains(detail, want) {
			t.Errorf("refusal %q does not name %s", detail, want)
		}
	}
	if priv.DatabaseExists(t, "shop") {
		t.Fatal("a refused whole-server restore created shop")
	}
	if diff := testbench.DiffFingerprints(priv.Fingerprint(t, "audit"), changedAudit); diff != "" {
		t.Fatalf("audit changed by a refused restore:\n%s", diff)
	}
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
	// The same refusal for a one-database backup going back into its own
	// database, which holds tables now, names the three ways out.
	detail = refusedByCLI(t, c, "restore", "--name", "shop-only", "--wait")
	for _, want := range []string{"database shop", `"clean": true`, `"replace": true`, `"target_database"`} {
		if !strings.Contains(detail, want) {
			t.Errorf("refusal %q does not name %s", detail, want)
		}
	}
	out = c.remove("whole-1")
	c.waitTask(out.TaskID, time.Minute)
	if objs, err := c.minio().List(t.Context(), "postgres/whole-1"); err != nil || len(objs) != 0 {
		t.Fatalf("after delete MinIO holds %v (%v)", objs, err)
	}
}

// refusedByCLI runs a pgbackup restore --wait that the worker must refuse
// because its target database is not empty: exit 1 within seconds (the
// cluster retries a transient failure after 1 s, 2 s, 4 s..., so a retried
// refusal would show), a last line naming the error class, and the task
// archived after its first attempt. It returns the line's detail.
func refusedByCLI(t *testing.T, c *cluster, args ...string) string {
	t.Helper()
	start := time.Now()
	code, stdout, stderr := c.cli(nil, args...)
	took := time.Since(start)
	const prefix = "error: target database not empty: "
	if code != 1 || !strings.HasPrefix(lastLine(stderr), prefix) {
		t.Fatalf("pgbackup %v = %d, want 1 and a last line %q...\nstdout %s\nstderr %s", args, code, prefix, stdout, stderr)
	}
	if took > 15*time.Second {
		t.Errorf("pgbackup %v took %s to report the refusal, want seconds", args, took)
	}
	var id string
	if _, err := fmt.Sscanf(stderr, "task %s enqueued", &id); err != nil {
		t.Fatalf("no task id in %q: %v", stderr, err)
	}
	st := must(c.admin().Task(t.Context(), id))(t)
	if st.State != client.StateArchived || st.Retried != 0 {
		t.Errorf("refused task %s: state %s after %d retries, want archived after none", id, st.State, st.Retried)
	}
	t.Logf("pgbackup %v refused in %s: %s", args, took.Round(time.Millisecond), lastLine(stderr))
	return strings.TrimPrefix(lastLine(stderr), prefix)
}
