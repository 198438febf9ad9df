package services

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgres is the bench's PostgreSQL: data in PG_DIR/data, its log in
// PG_DIR/log, its socket in PG_DIR/sock. PG_DIR is DIR/pg or, when
// relocated, a directory under /tmp that DIR/pg links to.
type postgres struct {
	b *Bench
	// serverVersion is what the server reported, once created.
	serverVersion string
}

// sunPathMax leaves room below the 107 bytes a Unix socket path may hold.
const sunPathMax = 100

// relocatedPrefix is where relocated PostgreSQL files go; Stop removes
// only directories that start with it.
const relocatedPrefix = "/tmp/pgbackup-tb-pg."

func isRelocatedDir(d string) bool { return strings.HasPrefix(d, relocatedPrefix) }

func (p *postgres) dir() string  { return p.b.get(keyPGDir) }
func (p *postgres) port() string { return p.b.get(keyPGPort) }
func (p *postgres) file(name string) string {
	return filepath.Join(p.dir(), name)
}

func (p *postgres) create(ctx context.Context) error {
	bin := pgBinDir()
	if bin == "" {
		return fmt.Errorf("%w: initdb (run: testbench install)", ErrMissing)
	}
	if err := p.b.set(keyPGBin, bin); err != nil {
		return err
	}
	if isRoot() {
		if _, _, err := postgresUser(); err != nil {
			return err
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			return fmt.Errorf("%w: runuser (run: testbench install)", ErrMissing)
		}
	}
	if err := p.makeDir(ctx); err != nil {
		return err
	}
	if err := p.initdb(ctx, bin); err != nil {
		return err
	}
	if err := p.b.onFreePorts(ctx, Postgres, []string{keyPGPort}, p.serve, nil); err != nil {
		return err
	}
	return p.createRole(ctx)
}

// makeDir creates PG_DIR. The socket path must fit in sun_path, and as
// root the postgres user must be able to reach DIR (not so under /root);
// otherwise PostgreSQL's files go to a directory of their own under /tmp.
func (p *postgres) makeDir(ctx context.Context) error {
	pgdir := filepath.Join(p.b.dir, "pg")
	relocate := len(filepath.Join(pgdir, "sock", ".s.PGSQL.65535")) > sunPathMax
	if isRoot() && !relocate {
		// The kernel's answer for the postgres user, with all its groups.
		relocate = exec.CommandContext(ctx, "runuser", "-u", "postgres", "--", "test", "-x", p.b.dir).Run() != nil
	}
	if relocate {
		d, err := os.MkdirTemp("/tmp", filepath.Base(relocatedPrefix)+"*")
		if err != nil {
			return fmt.Errorf("relocate PostgreSQL files: %w", err)
		}
		if err := p.b.set(keyPGRelocated, d); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("relocate PostgreSQL files: %w", err)
		}
		if err := os.Symlink(d, pgdir); err != nil {
			return fmt.Errorf("relocate PostgreSQL files: %w", err)
		}
		pgdir = d
	}
	if err := p.b.set(keyPGDir, pgdir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(pgdir, "sock"), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", pgdir, err)
	}
	if !isRoot() {
		return nil
	}
	uid, gid, err := postgresUser()
	if err != nil {
		return err
	}
	return filepath.WalkDir(pgdir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("give %s to the postgres user: %w", path, err)
		}
		return nil
	})
}

// cUTF8 finds the C.UTF-8 locale in the output of locale -a.
var cUTF8 = regexp.MustCompile(`(?im)^c\.utf-?8$`)

// initdb creates the cluster: password authentication over TCP (a
// password that never reaches pg_dump must fail the tests), trust on the
// private socket (to create the role), UTF-8 in the C.UTF-8 locale, or C
// where that locale is missing.
func (p *postgres) initdb(ctx context.Context, bin string) error {
	locales := []string{"C.UTF-8", "C"}
	if out, err := exec.CommandContext(ctx, "locale", "-a").Output(); err == nil && !cUTF8.Match(out) {
		locales = []string{"C"}
	}
	logPath := p.file("initdb.log")
	for i, locale := range locales {
		log, err := appendLog(logPath)
		if err != nil {
			return fmt.Errorf("initdb: %w", err)
		}
		args := []string{"-D", p.file("data"),
			"--auth-local=trust", "--auth-host=scram-sha-256", "-U", "postgres", "-E", "UTF8",
			"--locale=" + locale, "--no-sync"}
		if n := p.b.opts.WALSegSizeMB; n != 0 {
			args = append(args, fmt.Sprintf("--wal-segsize=%d", n))
		}
		cmd := asPostgres(ctx, filepath.Join(bin, "initdb"), args...)
		cmd.Stdout, cmd.Stderr = log, log
		err = cmd.Run()
		log.Close()
		if err == nil {
			return nil
		}
		if i == len(locales)-1 || ctx.Err() != nil {
			return withLogs(fmt.Errorf("initdb: %w", err), logPath)
		}
		p.b.logf("initdb with --locale=%s failed; retrying with --locale=%s", locale, locales[i+1])
		if err := os.RemoveAll(p.file("data")); err != nil {
			return fmt.Errorf("initdb: %w", err)
		}
	}
	return nil
}

// serve starts the server with pg_ctl on the recorded port and waits until
// it accepts connections. Durability is off: the bench's data is
// disposable and its speed matters.
func (p *postgres) serve(ctx context.Context) error {
	errLog, err := appendLog(p.file("pg_ctl.log"))
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w", err)
	}
	defer errLog.Close()
	// pg_ctl runs -o through /bin/sh: quote the socket path.
	durability := "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
	if p.b.opts.PITR {
		durability = "-c fsync=on -c wal_level=replica -c max_wal_senders=4"
	}
	serverOpts := fmt.Sprintf("-c listen_addresses=%s -p %s -k %s %s -c max_connections=100",
		loopback, p.port(), ShellQuote(p.file("sock")), durability)
	cmd := asPostgres(ctx, filepath.Join(p.b.get(keyPGBin), "pg_ctl"), "-D", p.file("data"), "-w", "-t", "60",
		"-l", p.file("log"), "-o", serverOpts, "start")
	cmd.Stderr = errLog
	logStart := fileSize(p.file("log"))
	if err := cmd.Run(); err != nil {
		if logMatches(p.file("log"), logStart, portTaken) {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return withLogs(fmt.Errorf("pg_ctl start: %w", err), p.file("pg_ctl.log"), p.file("log"))
	}
	return nil
}

func (p *postgres) start(ctx context.Context) error { return p.serve(ctx) }

func (p *postgres) version() string { return p.serverVersion }

// createRole creates the password role the tests use and its database.
// The password travels inside the connection only, never on a command line.
func (p *postgres) createRole(ctx context.Context) error {
	password := randomHex(16)
	if err := p.b.set(keyPGPassword, password); err != nil {
		return err
	}
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/postgres",
		RawQuery: url.Values{"host": {p.file("sock")}, "port": {p.port()}, "sslmode": {"disable"}}.Encode()}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("connect as postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	role := pgx.Identifier{pgUser}.Sanitize()
	attrs := "LOGIN CREATEDB CREATEROLE"
	stmts := []string{}
	if p.b.opts.PITR {
		attrs += " REPLICATION"
		stmts = append(stmts, "ALTER SYSTEM SET max_slot_wal_keep_size = '256MB'", "SELECT pg_reload_conf()")
	}
	stmts = append(stmts,
		"CREATE ROLE "+role+" "+attrs+" PASSWORD '"+strings.ReplaceAll(password, "'", "''")+"'",
		"CREATE DATABASE "+pgx.Identifier{pgDB}.Sanitize()+" OWNER "+role)
	for _, sql := range stmts {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create role and database %s: %w", pgUser, err)
		}
	}
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err == nil {
		// "15.14 (Debian 15.14-0+deb12u1)": the number says enough.
		p.serverVersion = strings.Fields(version + " ")[0]
	}
	return nil
}

// pid is the postmaster's pid from postmaster.pid, if it runs.
func (p *postgres) pid() int {
	if p.dir() == "" {
		return 0
	}
	return runningPid(p.file(filepath.Join("data", "postmaster.pid")), p.dir())
}

// stop asks pg_ctl for a fast shutdown; if pg_ctl fails, it signals the
// postmaster itself.
func (p *postgres) stop(ctx context.Context) error {
	pid := p.pid()
	if pid == 0 {
		return nil // not running, or a stale pid file
	}
	if bin := p.b.get(keyPGBin); bin != "" {
		cmd := asPostgres(ctx, filepath.Join(bin, "pg_ctl"), "-D", p.file("data"), "-m", "fast", "-w", "-t", "30", "stop")
		err := cmd.Run()
		// pg_ctl -w returns once postmaster.pid is gone, which the
		// postmaster removes just before it exits: wait for the process
		// itself, or a restart on the same port can race it.
		if err == nil && waitGone(ctx, pid, 10*time.Second) {
			return nil
		}
		if err == nil {
			err = errors.New("postmaster still running after pg_ctl stop")
		}
		p.b.logf("pg_ctl stop failed (%v); signalling postgres pid %d", err, pid)
	}
	return p.b.terminate(ctx, pid, "postgres")
}
