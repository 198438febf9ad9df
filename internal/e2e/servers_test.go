package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/testbench"
)

// TestTargetsOnTwoServers backs up and restores databases of two
// PostgreSQL servers through one service: the configured one (POSTGRES_*)
// and a second one that a target names with host, port, user and
// password_file. A backup goes back to the server it came from by
// default, a restore may name another target's server, and a drill of
// the second server's target runs there.
func TestTargetsOnTwoServers(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	// The second server: a private bench's PostgreSQL (Debian offers one
	// major version, so two instances of it).
	other := testbench.Require(t).StartPrivate(t)

	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE a_only (id int PRIMARY KEY)`, `INSERT INTO a_only SELECT generate_series(1, 300)`)
	wantA := c.env.Fingerprint(t, c.source)
	salesDB := testbench.UniqueName("sales")
	other.CreateDB(t, salesDB)
	other.Exec(t, salesDB, `CREATE TABLE orders (id int PRIMARY KEY, total numeric)`,
		`INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 1200) g`)
	wantB := other.Fingerprint(t, salesDB)

	pwFile := filepath.Join(t.TempDir(), "other.password")
	if err := os.WriteFile(pwFile, []byte(other.PGPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	targets := fmt.Sprintf(`BACKUP_TARGETS=[`+
		`{"name":"local","database":%q},`+
		`{"name":"remote","database":%q,"host":%q,"port":%s,"user":%q,"password_file":%q,"sslmode":"disable"},`+
		// No password_file: POSTGRES_PASSWORD must not be sent to it.
		`{"name":"nopass","database":%q,"host":%q,"port":%s,"user":%q,"sslmode":"disable"}]`,
		c.source, salesDB, other.PGHost, other.PGPort, other.PGUser, pwFile,
		salesDB, other.PGHost, other.PGPort, other.PGUser)
	c.progs.Env = append(c.progs.Env, targets, "TASK_MAX_RETRY=0")
	c.startAPI()
	c.start("worker", "worker")

	// The targets listing says which server each is on.
	servers := map[string]string{}
	for _, tg := range must(c.admin().Targets(t.Context()))(t).Targets {
		servers[tg.Name] = tg.Server
	}
	if servers["local"] != "" || servers["remote"] != other.PGHost+":"+other.PGPort {
		t.Fatalf("targets list servers %v, want remote on %s:%s and local on none", servers, other.PGHost, other.PGPort)
	}

	backup := func(target, name string) {
		t.Helper()
		out := c.create(client.CreateBackupRequest{Target: target, BackupName: name})
		c.waitTask(out.TaskID, 2*time.Minute)
	}
	backup("remote", "from-b")
	backup("local", "from-a")
	if got := c.listBackups()["from-b"].Database; got != salesDB {
		t.Fatalf("backup of the remote target lists database %v, want %s", got, salesDB)
	}

	// Back to the server it came from, by default.
	copyB := testbench.UniqueName("sales_copy")
	other.DropDBOnCleanup(t, copyB)
	c.env.DropDBOnCleanup(t, copyB)
	out := c.restore(client.RestoreBackupRequest{BackupName: "from-b", TargetDatabase: copyB})
	c.waitTask(out.TaskID, 2*time.Minute)
	if diff := testbench.DiffFingerprints(other.Fingerprint(t, copyB), wantB); diff != "" {
		t.Fatalf("restore on the second server differs: %s", diff)
	}
	if c.env.DatabaseExists(t, copyB) {
		t.Fatalf("restore of the second server's backup created %s on the first server", copyB)
	}

	// Into another target's server: the first server's backup onto the second.
	copyA := testbench.UniqueName("a_copy")
	other.DropDBOnCleanup(t, copyA)
	c.env.DropDBOnCleanup(t, copyA)
	out = c.restore(client.RestoreBackupRequest{BackupName: "from-a", Target: "remote", TargetDatabase: copyA})
	c.waitTask(out.TaskID, 2*time.Minute)
	if diff := testbench.DiffFingerprints(other.Fingerprint(t, copyA), wantA); diff != "" {
		t.Fatalf("restore into the remote target's server differs: %s", diff)
	}
	if c.env.DatabaseExists(t, copyA) {
		t.Fatalf("restore naming target remote created %s on the first server", copyA)
	}

	// Naming a target that does not exist is a 404, with no task.
	if _, err := c.admin().RestoreBackup(t.Context(),
		client.RestoreBackupRequest{BackupName: "from-a", Target: "nowhere", TargetDatabase: "x"}); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("restore into an unknown target = %v, want 404", err)
	}

	// A drill of the remote target restores into a scratch database on its
	// own server.
	var r client.Response
	out, err := c.admin().DrillTarget(t.Context(), "remote", client.WithResponse(&r))
	st := c.waitTask(c.accepted("drill", &r, out, err).TaskID, 2*time.Minute)
	if res := result(t, st); res == nil || res["passed"] != true {
		t.Fatalf("drill of the remote target: %+v", st)
	}

	// Without a password file the second server gets no password, not
	// POSTGRES_PASSWORD, and refuses the connection.
	out = c.create(client.CreateBackupRequest{Target: "nopass", BackupName: "no-pass"})
	st = c.waitTask(out.TaskID, 2*time.Minute, "archived")
	if e := st.Error; !strings.Contains(e, "postgres") {
		t.Fatalf("backup of a target without its password: error %q, want a PostgreSQL connection failure", e)
	}
}
