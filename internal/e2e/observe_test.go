package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
)

// What the high-availability, TLS and two-server tests observe from
// outside the service: where its connections go, what its workers ran,
// what the servers saw. Each helper reads a fact from a server or a log,
// not the service's own account of itself.

// redisTrap is a loopback port that accepts connections and drops them at
// once, counting them: given as REDIS_ADDR to programs that must use the
// sentinels or the cluster only, it makes a fallback to REDIS_ADDR fail
// loudly and records that one was tried. (An unset REDIS_ADDR would mean
// the default 127.0.0.1:6379, where some machine's Redis may answer.)
type redisTrap struct {
	addr  string
	dials atomic.Int64
}

// onlyRedis replaces the bench's REDIS_ADDR in the cluster's environment
// by a trap and adds settings (the sentinels or the cluster), so that its
// programs have no standalone Redis to fall back on.
func (c *cluster) onlyRedis(settings ...string) *redisTrap {
	c.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	trap := &redisTrap{addr: l.Addr().String()}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			trap.dials.Add(1)
			conn.Close()
		}
	})
	c.t.Cleanup(func() { l.Close(); wg.Wait() })
	env := harness.Without(c.progs.Env, harness.Names("REDIS_ADDR"))
	c.progs.Env = append(append(env, "REDIS_ADDR="+trap.addr), settings...)
	return trap
}

// check fails the test if any program dialled the trap.
func (r *redisTrap) check(t *testing.T) {
	t.Helper()
	if n := r.dials.Load(); n > 0 {
		t.Errorf("the programs dialled REDIS_ADDR (%s) %d times although they were given only the sentinels or the cluster", r.addr, n)
	}
}

// taskStarts counts, per task id, the "task started" lines in the logs of
// procs: one line per execution of a task's handler, retries and re-runs
// after a lost lease included. Stored objects cannot tell a re-run, which
// overwrites the same key.
func taskStarts(t *testing.T, procs ...*harness.Proc) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, p := range procs {
		sc := bufio.NewScanner(strings.NewReader(logText(t, p)))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line struct {
				Msg    string `json:"msg"`
				TaskID string `json:"task_id"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "task started" {
				n[line.TaskID]++
			}
		}
	}
	return n
}

// checkRanOnce fails the test unless each of ids started exactly once in
// the workers' logs.
func checkRanOnce(t *testing.T, ids []string, workers ...*harness.Proc) {
	t.Helper()
	starts := taskStarts(t, workers...)
	for _, id := range ids {
		if starts[id] != 1 {
			t.Errorf("task %s started %d times in the workers' logs, want exactly once", id, starts[id])
		}
	}
}

// tableLock holds an ACCESS EXCLUSIVE lock on a table in an open
// transaction: pg_dump's LOCK TABLE ... IN ACCESS SHARE MODE waits for it,
// so a backup is provably in progress (and stays so) until release.
type tableLock struct {
	conn *pgx.Conn
	once sync.Once
}

// lockTable takes the lock through url (a libpq URL), released when the
// test ends at the latest.
func lockTable(t *testing.T, url, table string) *tableLock {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("lock %s: %v", table, err)
	}
	l := &tableLock{conn: conn}
	t.Cleanup(l.release)
	for _, s := range []string{"BEGIN", "LOCK TABLE " + pgx.Identifier{table}.Sanitize() + " IN ACCESS EXCLUSIVE MODE"} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("lock %s: %s: %v", table, s, err)
		}
	}
	return l
}

// release ends the transaction; the waiting dumps go on.
func (l *tableLock) release() {
	l.once.Do(func() { l.conn.Close(context.Background()) })
}

// waitingDumpsSQL finds the service's pg_dump sessions (application_name
// pgbackup, which the worker gives its tools) in database $1 waiting on a
// table lock, with whether each is encrypted (pg_stat_ssl).
const waitingDumpsSQL = `SELECT a.pid, coalesce(s.ssl, false), coalesce(s.version, '')
FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s ON s.pid = a.pid
WHERE a.datname = $1 AND a.application_name = 'pgbackup'
  AND a.wait_event_type = 'Lock' AND a.query LIKE 'LOCK TABLE %'`

// dumpSession is one pg_dump session as the server sees it.
type dumpSession struct {
	pid        int
	ssl        bool
	tlsVersion string
}

// waitDumps waits until at least n of the service's pg_dump sessions in db
// wait on a lock (see lockTable) and returns them; url reaches the server
// as a role that may read other sessions' activity.
func waitDumps(t *testing.T, url, db string, n int, timeout time.Duration) []dumpSession {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var got []dumpSession
	err = harness.Poll(ctx, timeout, 20*time.Millisecond, func() (bool, error) {
		rows, err := conn.Query(ctx, waitingDumpsSQL, db)
		if err != nil {
			return false, err
		}
		got, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (dumpSession, error) {
			var d dumpSession
			return d, r.Scan(&d.pid, &d.ssl, &d.tlsVersion)
		})
		return len(got) >= n, err
	})
	if err != nil {
		t.Fatalf("waiting for %d pg_dump sessions of the service waiting on the lock in %s: %v (found %d)", n, db, err, len(got))
	}
	return got
}

// pgSuperuser connects to a bench's server as its superuser postgres over
// the Unix socket (trust), for server settings and roles; closed when the
// test ends.
func pgSuperuser(t *testing.T, env testbench.Env) *pgx.Conn {
	t.Helper()
	q := url.Values{"host": {env.PGSocket}, "port": {env.PGPort}, "sslmode": {"disable"}}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/postgres", RawQuery: q.Encode()}).String())
	if err != nil {
		t.Fatalf("connect as postgres: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// execAll runs statements on conn, failing the test at the first error.
func execAll(t *testing.T, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// serverLog is a bench's PostgreSQL server log (pg_ctl -l PG_DIR/log).
func serverLog(t *testing.T, env testbench.Env) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.Dir, "pg", "log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logins counts the "connection authorized: user=<role> " lines of a
// server log with log_connections on: the sessions that passed
// authentication as role.
func logins(serverLog, role string) int {
	return strings.Count(serverLog, "connection authorized: user="+role+" ")
}
