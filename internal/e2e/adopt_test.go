package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/store"
)

// oldDump runs pg_dump exactly as the old manager did (pg_dump -F <flag>
// -f <path>) and returns the path.
func (c *cluster) oldDump(flag, path string) string {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.env.PGBin, "pg_dump"), "-F", flag, "-f", path, "--no-password", c.source)
	cmd.Env = append(os.Environ(), "PGHOST="+c.env.PGHost, "PGPORT="+c.env.PGPort, "PGUSER="+c.env.PGUser,
		"PGPASSWORD="+c.env.PGPassword, "PGSSLMODE=disable")
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("pg_dump -F %s: %v: %s", flag, err, out)
	}
	return path
}

// adoptCLI runs pgbackup adopt with args and --json, and returns the
// task's result.
func (c *cluster) adoptCLI(args ...string) client.AdoptResult {
	c.t.Helper()
	code, stdout, stderr := c.cli(nil, append([]string{"adopt", "--json"}, args...)...)
	var task client.Task
	var res client.AdoptResult
	if code != 0 || json.Unmarshal([]byte(stdout), &task) != nil || json.Unmarshal(task.Result, &res) != nil {
		c.t.Fatalf("pgbackup adopt %v = %d\nstdout %s\nstderr %s", args, code, stdout, stderr)
	}
	return res
}

// TestAdoptTheOldManagersBackups makes backups as the old manager did, in
// both stores and the four formats, adopts them through the API and the
// CLI, and restores each into a database equal to the source.
func TestAdoptTheOldManagersBackups(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "ADOPT_MIN_AGE=0s", "COMPRESSION=none", "BACKUP_SIGNING_KEY="+signingKey)
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (id int PRIMARY KEY, v text)`, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g`)
	want := c.env.Fingerprint(t, c.source)
	root, scratch := c.local().Root(), t.TempDir()
	mio := c.minio()
	put := func(key, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := mio.Put(t.Context(), key, bytes.NewReader(b), nil); err != nil {
			t.Fatal(err)
		}
	}
	c.oldDump("c", filepath.Join(root, "autograph_scheduled_20240301_020000.dump"))
	c.oldDump("p", filepath.Join(root, "backup_20240302_020000.sql"))
	c.oldDump("d", filepath.Join(root, "backup_20240303_020000"))
	put("postgres/backup_20240304_020000.tar", c.oldDump("t", filepath.Join(scratch, "t.tar")))
	dir := c.oldDump("d", filepath.Join(scratch, "d"))
	for _, f := range must(os.ReadDir(dir))(t) {
		put("postgres/backup_20240305_020000/"+f.Name(), filepath.Join(dir, f.Name()))
	}
	if err := os.WriteFile(filepath.Join(root, "corrupt_20240306_020000.dump"), []byte("PGDMP\x00\x00\x00 broken"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "random.tar"), bytes.Repeat([]byte{0xde, 0xad}, 3000), 0o640); err != nil {
		t.Fatal(err)
	}
	c.startAPI()
	c.start("worker", "worker")

	// A backup of this service, deleted, whose archive a half-failed
	// delete left behind: with COMPRESSION=none it looks like an old one.
	c.waitTask(c.create(client.CreateBackupRequest{BackupName: "svc_gone", Stores: []string{store.MinIOName}}).TaskID, time.Minute)
	gone := must(mio.Get(t.Context(), "postgres/svc_gone.dump"))(t)
	goneBytes := must(io.ReadAll(gone))(t)
	gone.Close()
	c.waitTask(c.remove("svc_gone").TaskID, time.Minute)
	if err := mio.Put(t.Context(), "postgres/svc_gone.dump", bytes.NewReader(goneBytes), nil); err != nil {
		t.Fatal(err)
	}

	// A real adoption needs a dry run's plan.
	if _, err := c.admin().AdoptBackups(t.Context(), client.AdoptRequest{}); err == nil || !strings.Contains(err.Error(), "plan") {
		t.Fatalf("adopt without a plan: %v, want a 400 asking for the dry run's plan", err)
	}
	// The answer itself lists the dry run's outcome (the task is quick).
	code, _, body := c.raw(http.MethodPost, "/api/admin/backup/adopt", adminToken, nil, map[string]any{"dry_run": true})
	var dry client.AdoptResult
	if err := json.Unmarshal(body, &dry); code != http.StatusOK || err != nil || dry.Plan == "" || !dry.DryRun {
		t.Fatalf("dry run answered %d %s (%v), want 200 with the lists and a plan", code, body, err)
	}
	wantNames := []string{"autograph_scheduled_20240301_020000", "backup_20240302_020000", "backup_20240303_020000",
		"backup_20240304_020000", "backup_20240305_020000"}
	if got := itemNames(dry.Adopted); !slices.Equal(got, wantNames) {
		t.Fatalf("dry run would adopt %v, want %v; skipped %+v", got, wantNames, dry.Skipped)
	}
	reasons := map[string]string{}
	for _, s := range dry.Skipped {
		reasons[s.BackupName] = s.Reason
	}
	if reasons["corrupt_20240306_020000"] != "not a dump" || reasons["random"] != "not a dump" || reasons["svc_gone"] != "deleted by this service" {
		t.Fatalf("skipped %v; want corrupt and random as not a dump, svc_gone as deleted by this service", reasons)
	}

	// The command a person runs after reading the dry run.
	code, stdout, stderr := c.cli(nil, "adopt", "--plan", dry.Plan)
	if code != 0 || !strings.Contains(stdout, "adopted 5:") || !strings.Contains(stdout, "backup_20240303_020000") {
		t.Fatalf("pgbackup adopt --plan = %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	listed := c.listBackups()
	if len(listed) != len(wantNames) {
		t.Fatalf("listed %d backups, want the %d adopted: %v", len(listed), len(wantNames), listed)
	}
	for _, name := range wantNames {
		b := listed[name]
		if !b.Adopted || !b.Signed {
			t.Errorf("%s lists adopted %v signed %v, want both", name, b.Adopted, b.Signed)
		}
		target := testbench.UniqueName("adopted")
		c.env.DropDBOnCleanup(t, target)
		c.waitTask(c.restore(client.RestoreBackupRequest{BackupName: name, TargetDatabase: target}).TaskID, 2*time.Minute)
		if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, target), want); diff != "" {
			t.Fatalf("%s restored differs from the source:\n%s", name, diff)
		}
	}
	if !listed["autograph_scheduled_20240301_020000"].Scheduled {
		t.Errorf("the old scheduler's backup is not listed as scheduled: %+v", listed["autograph_scheduled_20240301_020000"])
	}

	// The same plan again: what it listed is adopted now, so the list
	// differs and nothing is applied.
	if code, _, stderr := c.cli(nil, "adopt", "--plan", dry.Plan); code != 1 || !strings.Contains(stderr, "adoption plan changed") {
		t.Fatalf("a stale plan = %d, stderr %s; want exit 1 and \"adoption plan changed\"", code, stderr)
	}
	if again := c.adoptCLI("--dry-run"); len(again.Adopted) != 0 {
		t.Fatalf("a second adoption would adopt %v", itemNames(again.Adopted))
	}
	if _, err := os.Stat(filepath.Join(root, "backup_20240303_020000", "toc.dat")); err != nil {
		t.Fatalf("the adopted directory dump's folder is gone: %v", err)
	}
}

func itemNames(items []client.AdoptItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.BackupName)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
