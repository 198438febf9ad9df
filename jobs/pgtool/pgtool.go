// Package pgtool runs pg_dump, pg_restore and psql safely: with the client
// version matched to the server, the password only in the environment, the
// child killed with its context and with its parent, and stderr captured
// into the returned error.
package pgtool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors callers test with errors.Is.
var (
	// ErrNoMatchingClient means no installed pg_dump is at least as new as
	// the server; pg_dump refuses to dump newer servers.
	ErrNoMatchingClient = errors.New("no pg_dump matching the server version")
	// ErrUnreachable means the server could not be connected to at all.
	ErrUnreachable = errors.New("postgres unreachable")
	// ErrAuth means the server refused the role or its password (SQLSTATE
	// class 28), or asked for a password there was none to give.
	ErrAuth = errors.New("postgres authentication failed")

	// What a failed tool printed; a ToolError unwraps to at most one of
	// them (see Classify). Each names a failure a retry cannot fix: the
	// same archive against the same database fails the same way.
	// ErrObjectExists: the target already holds an object the archive
	// creates (SQLSTATE 42P04, 42P06, 42P07, 42710, 42723, ...).
	ErrObjectExists = errors.New("object already exists")
	// ErrUndefinedObject: the SQL names an object (role, schema, table,
	// function, extension) the target lacks (42P01, 42704, 42883, 3F000).
	ErrUndefinedObject = errors.New("object does not exist")
	// ErrSQLSyntax: the server could not parse the SQL (42601).
	ErrSQLSyntax = errors.New("SQL syntax error")
	// ErrConstraint: data violates a constraint (class 23).
	ErrConstraint = errors.New("constraint violation")
	// ErrPermission: the role may not do what the SQL asks (42501).
	ErrPermission = errors.New("permission denied")
	// ErrNoDatabase: the database to connect to does not exist (3D000).
	ErrNoDatabase = errors.New("database does not exist")
)

// Conn says how to reach a server. It is turned into libpq environment
// variables, never into command-line arguments, so the password cannot be
// read from the process list.
type Conn struct {
	Host     string
	Port     int
	User     string
	Password string
	SSLMode  string
	// SSLRootCert is the CA file libpq checks the server's certificate
	// against (verify-ca, verify-full); empty leaves libpq's default.
	SSLRootCert string
	Database    string
}

// Addr is host:port, for logs and listings (never the password).
func (c Conn) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// WithDatabase returns a copy of c pointing at another database.
func (c Conn) WithDatabase(db string) Conn { c.Database = db; return c }

// Env returns the libpq variables for c appended to base, after removing any
// PG* variables base already had so that nothing inherited can redirect the
// child to another server.
func (c Conn) Env(base []string) []string {
	out := make([]string, 0, len(base)+8)
	for _, kv := range base {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		out = append(out, kv)
	}
	sslmode := c.SSLMode
	if sslmode == "" {
		sslmode = "prefer"
	}
	if c.SSLRootCert != "" {
		out = append(out, "PGSSLROOTCERT="+c.SSLRootCert)
	}
	return append(out,
		"PGHOST="+c.Host,
		"PGPORT="+strconv.Itoa(c.Port),
		"PGUSER="+c.User,
		"PGPASSWORD="+c.Password,
		"PGDATABASE="+c.Database,
		"PGSSLMODE="+sslmode,
		"PGCONNECT_TIMEOUT=10",
		"PGAPPNAME=pgbackup",
	)
}

// MinimalEnv keeps of environ only what the client tools need: PATH, HOME,
// the locale (LANG, LANGUAGE, LC_*) and TZ. Everything else, such as the
// worker's MinIO, Redis or API secrets and the signing key, is dropped, so
// no child process (nor anything it might run) ever sees them; Env then
// adds the PG* variables for the connection.
func MinimalEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "TZ", name == "LANG", name == "LANGUAGE",
			strings.HasPrefix(name, "LC_"):
			out = append(out, kv)
		}
	}
	return out
}

// connString is used only in-process by pgx; it never reaches a command line.
func (c Conn) connString() string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(c.User, c.Password),
		Host:   net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:   "/" + c.Database,
	}
	sslmode := c.SSLMode
	if sslmode == "" {
		sslmode = "prefer"
	}
	q := url.Values{"sslmode": {sslmode}, "connect_timeout": {"10"}, "application_name": {"pgbackup"}}
	if c.SSLRootCert != "" {
		q.Set("sslrootcert", c.SSLRootCert)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Connect opens a pgx connection. Connection failures wrap ErrUnreachable
// unless the server answered (bad password, missing database).
func Connect(ctx context.Context, c Conn) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.connString())
	if err != nil {
		var nerr net.Error
		var operr *net.OpError
		if errors.As(err, &operr) || errors.As(err, &nerr) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("connect %s:%d: %w: %w", c.Host, c.Port, ErrUnreachable, err)
		}
		var pgErr *pgconn.PgError
		if (errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28")) || strings.Contains(err.Error(), "password authentication failed") ||
			strings.Contains(err.Error(), "no password") {
			return nil, fmt.Errorf("connect %s:%d as %s: %w: %w", c.Host, c.Port, c.User, ErrAuth, err)
		}
		return nil, fmt.Errorf("connect %s:%d as %s: %w", c.Host, c.Port, c.User, err)
	}
	return conn, nil
}

// ServerVersion returns the server's version number, e.g. 150019.
func ServerVersion(ctx context.Context, c Conn) (int, error) {
	conn, err := Connect(ctx, c)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version_num").Scan(&v); err != nil {
		return 0, fmt.Errorf("server version: %w", err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("server version %q: %w", v, err)
	}
	return n, nil
}

// Tools is one installation's pg_dump, pg_restore and psql.
type Tools struct {
	Dir     string
	Major   int
	Version string // as pg_dump --version printed it, e.g. "15.19"
}

// Path returns the full path of one of the tools.
func (t Tools) Path(name string) string { return filepath.Join(t.Dir, name) }

var versionRe = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?`)

// ParseVersion reads "pg_dump (PostgreSQL) 15.19 (Debian ...)".
func ParseVersion(out string) (major int, version string, err error) {
	m := versionRe.FindStringSubmatch(out)
	if m == nil {
		return 0, "", fmt.Errorf("unrecognised version output %q", strings.TrimSpace(out))
	}
	major, _ = strconv.Atoi(m[1])
	version = m[1]
	if m[2] != "" {
		version += "." + m[2]
	}
	return major, version, nil
}

// Finder locates client tools; it caches each directory's version.
type Finder struct {
	// Forced, when set, is the only directory considered.
	Forced string
	// Candidates overrides the default search (tests).
	Candidates func() []string
	// ForcedSetting names the setting behind Forced (PG_BIN_DIR), so that
	// errors can tell the operator what to change; the package itself
	// knows no settings.
	ForcedSetting string

	mu    sync.Mutex
	cache map[string]Tools
}

// DefaultCandidates lists directories where distributions install client
// tools, newest first, plus the directory of pg_dump on PATH.
func DefaultCandidates() []string {
	var dirs []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin"} {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	return dirs
}

// Find returns the tools to use against a server of serverVersion
// (server_version_num): the same major version when installed, otherwise the
// oldest newer one. pg_dump refuses servers newer than itself.
func (f *Finder) Find(ctx context.Context, serverVersion int) (Tools, error) {
	serverMajor := serverVersion / 10000
	found := f.installed(ctx)
	for _, t := range found {
		if t.Major >= serverMajor {
			return t, nil
		}
	}
	var have []string
	for _, t := range found {
		have = append(have, fmt.Sprintf("%s in %s", t.Version, t.Dir))
	}
	if len(have) == 0 {
		have = []string{"none found"}
	}
	return Tools{}, fmt.Errorf("%w: server is PostgreSQL %d, pg_dump available: %s; install postgresql-client-%d%s",
		ErrNoMatchingClient, serverMajor, strings.Join(have, ", "), serverMajor, f.hint())
}

func (f *Finder) hint() string {
	if f.ForcedSetting == "" {
		return ""
	}
	return " or set " + f.ForcedSetting
}

// Newest returns the newest installed tools; pg_restore --list reads
// archives of its own and every older version without a server.
func (f *Finder) Newest(ctx context.Context) (Tools, error) {
	found := f.installed(ctx)
	if len(found) == 0 {
		return Tools{}, fmt.Errorf("%w: no pg_restore installed; install postgresql-client%s", ErrNoMatchingClient, f.hint())
	}
	return found[len(found)-1], nil
}

// installed probes the candidate directories, oldest major version first.
func (f *Finder) installed(ctx context.Context) []Tools {
	var dirs []string
	switch {
	case f.Forced != "":
		dirs = []string{f.Forced}
	case f.Candidates != nil:
		dirs = f.Candidates()
	default:
		dirs = DefaultCandidates()
	}
	var found []Tools
	for _, d := range dirs {
		if t, err := f.probe(ctx, d); err == nil {
			found = append(found, t)
		}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].Major < found[j].Major })
	return found
}

func (f *Finder) probe(ctx context.Context, dir string) (Tools, error) {
	f.mu.Lock()
	if t, ok := f.cache[dir]; ok {
		f.mu.Unlock()
		return t, nil
	}
	f.mu.Unlock()
	for _, name := range []string{"pg_dump", "pg_restore", "psql"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return Tools{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "pg_dump"), "--version").Output()
	if err != nil {
		return Tools{}, fmt.Errorf("pg_dump --version in %s: %w", dir, err)
	}
	major, version, err := ParseVersion(string(out))
	if err != nil {
		return Tools{}, err
	}
	t := Tools{Dir: dir, Major: major, Version: version}
	f.mu.Lock()
	if f.cache == nil {
		f.cache = map[string]Tools{}
	}
	f.cache[dir] = t
	f.mu.Unlock()
	return t, nil
}

// Command prepares one of the tools. The child gets SIGKILL when ctx ends
// and when this process dies (Pdeathsig), so a killed worker never leaves a
// pg_dump running against the database. Stderr is captured, bounded, and
// folded into the error by Wait.
func (t Tools) Command(ctx context.Context, c Conn, name string, args ...string) *Cmd {
	cmd := exec.CommandContext(ctx, t.Path(name), args...)
	cmd.Env = c.Env(MinimalEnv(os.Environ()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// After the child is killed, stop waiting for its pipes so a grandchild
	// holding them open cannot hang the worker.
	cmd.WaitDelay = 5 * time.Second
	stderr := &TailBuffer{Max: 16 << 10}
	head := &headBuffer{max: 8 << 10}
	cmd.Stderr = io.MultiWriter(head, stderr)
	return &Cmd{Cmd: cmd, name: name, stderr: stderr, head: head}
}

// Cmd is an exec.Cmd whose errors carry the tool's stderr.
type Cmd struct {
	*exec.Cmd
	name   string
	stderr *TailBuffer
	// head keeps the start of stderr, where the first error is when a
	// tool printed more than the tail holds.
	head *headBuffer
}

// Wait waits for the tool and wraps a failure with its stderr.
func (c *Cmd) Wait() error { return c.wrap(c.Cmd.Wait()) }

// Run starts the tool and waits for it.
func (c *Cmd) Run() error { return c.wrap(c.Cmd.Run()) }

// Stderr returns what the tool wrote to stderr, at most the last 16 KiB.
func (c *Cmd) Stderr() string { return c.stderr.String() }

// wrap turns a failure into a *ToolError carrying stderr and its class.
func (c *Cmd) wrap(err error) error {
	if err == nil {
		return nil
	}
	return newToolError(c.name, err, c.head.String(), strings.TrimSpace(c.stderr.String()))
}

// TailBuffer keeps the last Max bytes written to it. The end of a tool's
// stderr holds the fatal error; earlier lines are usually progress noise.
type TailBuffer struct {
	Max int

	mu  sync.Mutex
	buf []byte
	cut bool
}

// Write implements io.Writer; it never fails.
func (b *TailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.Max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.cut = true
	}
	return len(p), nil
}

func (b *TailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return "..." + string(bytes.ToValidUTF8(b.buf, nil))
	}
	return string(b.buf)
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	max int

	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer; it never fails.
func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := b.max - len(b.buf); n > 0 {
		b.buf = append(b.buf, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(bytes.ToValidUTF8(b.buf, nil))
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)

// ValidIdentifier reports whether s is a plain PostgreSQL identifier that we
// accept as a database name. QuoteIdent would allow more, but names that
// need quoting are a common source of restore mistakes and are refused.
func ValidIdentifier(s string) bool { return identRe.MatchString(s) }

// QuoteIdent quotes a PostgreSQL identifier.
func QuoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// DatabaseExists reports whether db exists on the server c points at.
func DatabaseExists(ctx context.Context, c Conn, db string) (bool, error) {
	conn, err := Connect(ctx, c.WithDatabase("postgres"))
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("check database %s: %w", db, err)
	}
	return exists, nil
}

// UserRelations counts the tables, views, sequences and other relations
// in db outside the system schemas (pg_*, information_schema), leaving out
// those an extension created: 0 means a restore has nothing in its way.
// A missing database counts 0.
func UserRelations(ctx context.Context, c Conn, db string) (int, error) {
	exists, err := DatabaseExists(ctx, c, db)
	if err != nil || !exists {
		return 0, err
	}
	conn, err := Connect(ctx, c.WithDatabase(db))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
		  AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
		  AND NOT EXISTS (SELECT 1 FROM pg_depend d
		                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count relations in %s: %w", db, err)
	}
	return n, nil
}

// CreateDatabase creates db owned by the connecting role.
func CreateDatabase(ctx context.Context, c Conn, db string) error {
	conn, err := Connect(ctx, c.WithDatabase("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+QuoteIdent(db)); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

// DropDatabase drops db if it exists. It fails rather than disconnect
// sessions that are still using it.
func DropDatabase(ctx context.Context, c Conn, db string) error {
	conn, err := Connect(ctx, c.WithDatabase("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+QuoteIdent(db)); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}
