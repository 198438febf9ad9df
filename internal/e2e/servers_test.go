package e2e

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/testbench"
)

// TestTargetsOnTwoServers backs up and restores databases of two
// PostgreSQL servers through one service: the configured one (POSTGRES_*)
// and a second one that a target names with host, port, user and
// password_file. A backup goes back to the server it came from by
// default, a restore may name another target's server, and a drill of
// the second server's target runs there.
//
// POSTGRES_PASSWORD is never sent to the second server. There the role
// named POSTGRES_USER has POSTGRES_PASSWORD as its password (scram, over
// TCP), so a leak would log in, and the server logs every session that
// passes authentication (log_connections): the test asserts from that log
// that the role was never logged into, while the target's own role was.
func TestTargetsOnTwoServers(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	// The second server: a private bench's PostgreSQL (Debian offers one
	// major version, so two instances of it).
	other := secondServer(t, c.env)

	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE a_only (id int PRIMARY KEY)`, `INSERT INTO a_only SELECT generate_series(1, 300)`)
	wantA := c.env.Fingerprint(t, c.source)
	salesDB := testbench.UniqueName("sales")
	other.CreateDB(t, salesDB)
	other.Exec(t, salesDB, `CREATE TABLE orders (id int PRIMARY KEY, total numeric)`,
		`INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 1200) g`)
	wantB := other.Fingerprint(t, salesDB)

	// The probe role may read the database: a leaked password would even
	// make the backup succeed.
	other.Exec(t, salesDB, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO "+pgx.Identifier{c.env.PGUser}.Sanitize())

	pwFile := filepath.Join(t.TempDir(), "other.password")
	if err := os.WriteFile(pwFile, []byte(other.owner.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	targets := fmt.Sprintf(`BACKUP_TARGETS=[`+
		`{"name":"local","database":%q},`+
		`{"name":"remote","database":%q,"host":%q,"port":%s,"user":%q,"password_file":%q,"sslmode":"disable"},`+
		// No password_file: POSTGRES_PASSWORD must not be sent to it, and
		// its user there has that very password.
		`{"name":"nopass","database":%q,"host":%q,"port":%s,"user":%q,"sslmode":"disable"}]`,
		c.source, salesDB, other.PGHost, other.PGPort, other.owner.name, pwFile,
		salesDB, other.PGHost, other.PGPort, c.env.PGUser)
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
	st = c.waitTask(out.TaskID, 2*time.Minute, client.StateCompleted, "archived")
	if e := st.Error; st.State != "archived" || !strings.Contains(e, "postgres") {
		t.Errorf("backup of a target without its password: %s, error %q; want archived with a PostgreSQL connection failure", st.State, e)
	}
	// What the second server saw: sessions as the target's role, none as
	// the role whose password is POSTGRES_PASSWORD.
	log := serverLog(t, other.Env)
	t.Logf("the second server's log: %d sessions as %s, %d as %s", logins(log, other.owner.name), other.owner.name,
		logins(log, c.env.PGUser), c.env.PGUser)
	if n := logins(log, other.owner.name); n == 0 {
		t.Errorf("the second server's log shows no session of the target's role %s", other.owner.name)
	}
	if n := logins(log, c.env.PGUser); n > 0 {
		t.Errorf("the second server let role %s (password: POSTGRES_PASSWORD) in %d times: the service sent POSTGRES_PASSWORD to it", c.env.PGUser, n)
	}
}

// twoServer is the second server of TestTargetsOnTwoServers: the test's
// own helpers use a role of their own (Env), the service's target the
// owner role, and the role named POSTGRES_USER waits with POSTGRES_PASSWORD.
type twoServer struct {
	testbench.Env
	owner struct{ name, password string }
}

// secondServer starts a private bench whose PostgreSQL logs each
// session's authentication, gives its POSTGRES_USER-named role the first
// server's password, and makes two roles of its own: one for the test's
// helpers (so that nothing legitimate logs in as that role) and the
// target's owner role.
func secondServer(t *testing.T, first testbench.Env) *twoServer {
	t.Helper()
	priv := first.StartPrivate(t)
	s := &twoServer{Env: priv}
	s.owner.name, s.owner.password = "sales_owner", rand.Text()
	helper, helperPassword := "e2e_helper", rand.Text()
	su := pgSuperuser(t, priv)
	quote := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	execAll(t, su,
		"ALTER SYSTEM SET log_connections = on", "SELECT pg_reload_conf()",
		"ALTER ROLE "+pgx.Identifier{first.PGUser}.Sanitize()+" PASSWORD "+quote(first.PGPassword),
		"CREATE ROLE "+helper+" LOGIN SUPERUSER PASSWORD "+quote(helperPassword),
		// A superuser: restores set owners and drills create databases;
		// what matters here is its name and password.
		"CREATE ROLE "+s.owner.name+" LOGIN SUPERUSER PASSWORD "+quote(s.owner.password))
	if priv.PGUser != first.PGUser {
		t.Fatalf("the benches' roles differ (%s, %s): the probe needs the POSTGRES_USER name", priv.PGUser, first.PGUser)
	}
	s.PGUser, s.PGPassword = helper, helperPassword
	return s
}
