package testbench

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// fixtureSQL builds a database with the kinds of data a backup must carry
// intact: integers, numerics, floats, timestamps, text with non-ASCII
// characters, jsonb with a GIN index, incompressible bytea (about 8 MiB, so
// archives span several MinIO parts), a foreign key, an identity column, a
// bigserial and a free-standing sequence advanced past its start.
var fixtureSQL = []string{
	`CREATE SEQUENCE order_no START 1000`,
	`SELECT setval('order_no', 4242)`,
	`CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, balance numeric(12,2),
	   score double precision, created timestamptz)`,
	`INSERT INTO accounts (name, balance, score, created)
	   SELECT 'user_' || g || ' ✓ é', g * 1.5, g / 7.0, '2024-01-01'::timestamptz + g * interval '1 minute'
	   FROM generate_series(1, 5000) g`,
	`CREATE INDEX accounts_name_idx ON accounts (name)`,
	`CREATE TABLE events (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	   account_id bigint REFERENCES accounts (id), payload jsonb, note text)`,
	`INSERT INTO events (account_id, payload, note)
	   SELECT (g % 5000) + 1, jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b'), 'nested', jsonb_build_object('x', g * 2)),
	          repeat('note ', g % 10)
	   FROM generate_series(1, 10000) g`,
	`CREATE INDEX events_payload_gin ON events USING gin (payload)`,
	`CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL)`,
	`INSERT INTO blobs
	   SELECT g, (SELECT decode(string_agg(md5(random()::text || g || i), ''), 'hex') FROM generate_series(1, 8192) i)
	   FROM generate_series(1, 64) g`,
}

// FixtureStatements returns the SQL that fills a fixture database, for
// callers that manage the database's lifetime themselves.
func FixtureStatements() []string { return slices.Clone(fixtureSQL) }

// FixtureTables are the tables CreateFixture fills.
var FixtureTables = []string{"accounts", "events", "blobs"}

// CreateFixture creates database db filled with the fixture and drops it
// when the test ends.
func (e Env) CreateFixture(t testing.TB, db string) {
	t.Helper()
	e.CreateDB(t, db)
	e.Exec(t, db, fixtureSQL...)
}

// CreateDB creates an empty database, dropped when the test ends.
func (e Env) CreateDB(t testing.TB, db string) {
	t.Helper()
	e.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	e.DropDBOnCleanup(t, db)
}

// DropDBOnCleanup drops db (if it exists) when the test ends.
func (e Env) DropDBOnCleanup(t testing.TB, db string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, e.PGURL("postgres"))
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		// An autovacuum worker may still be connected; FORCE cannot end it
		// for a non-superuser, but it leaves within seconds.
		var err2 error
		for range 10 {
			if _, err2 = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err2 == nil {
				return
			}
			time.Sleep(time.Second)
		}
		t.Logf("cleanup: drop %s: %v", db, err2)
	})
}

// connect opens a connection to db as the bench's password role; close
// ends both the connection and its two-minute context.
func (e Env) connect(t testing.TB, db string) (ctx context.Context, conn *pgx.Conn, close func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	conn, err := pgx.Connect(ctx, e.PGURL(db))
	if err != nil {
		cancel()
		t.Fatalf("connect %s: %v", db, err)
	}
	return ctx, conn, func() { conn.Close(ctx); cancel() }
}

// Exec runs statements in database db as the bench's password role.
func (e Env) Exec(t testing.TB, db string, stmts ...string) {
	t.Helper()
	ctx, conn, done := e.connect(t, db)
	defer done()
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("exec in %s: %v\n%s", db, err, s)
		}
	}
}

// DatabaseExists reports whether db exists.
func (e Env) DatabaseExists(t testing.TB, db string) bool {
	t.Helper()
	ctx, conn, done := e.connect(t, "postgres")
	defer done()
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// Fingerprint summarises a database's user data: for each table its row
// count and an md5 over all rows in primary-key order, each sequence's
// value, and the list of indexes. Two databases with equal fingerprints hold
// the same data.
func (e Env) Fingerprint(t testing.TB, db string) map[string]string {
	t.Helper()
	ctx, conn, done := e.connect(t, db)
	defer done()
	out := map[string]string{}
	tables := queryStrings(t, ctx, conn, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	for _, tbl := range tables {
		var v string
		q := fmt.Sprintf(`SELECT count(*)::text || ':' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY t::text)), '') FROM %s t`,
			pgx.Identifier{tbl}.Sanitize())
		if err := conn.QueryRow(ctx, q).Scan(&v); err != nil {
			t.Fatalf("fingerprint %s.%s: %v", db, tbl, err)
		}
		out["table "+tbl] = v
	}
	for _, seq := range queryStrings(t, ctx, conn, `SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1`) {
		var v string
		q := fmt.Sprintf(`SELECT last_value::text || ':' || is_called::text FROM %s`, pgx.Identifier{seq}.Sanitize())
		if err := conn.QueryRow(ctx, q).Scan(&v); err != nil {
			t.Fatalf("fingerprint sequence %s: %v", seq, err)
		}
		out["sequence "+seq] = v
	}
	out["indexes"] = strings.Join(queryStrings(t, ctx, conn,
		`SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1`), "\n")
	return out
}

// DiffFingerprints describes how two fingerprints differ, or "" if equal.
func DiffFingerprints(got, want map[string]string) string {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var b strings.Builder
	for _, k := range sorted {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			fmt.Fprintf(&b, "%s: missing, want %q\n", k, w)
		case !wok:
			fmt.Fprintf(&b, "%s: unexpected %q\n", k, g)
		case g != w:
			fmt.Fprintf(&b, "%s: got %q, want %q\n", k, g, w)
		}
	}
	return b.String()
}

func queryStrings(t testing.TB, ctx context.Context, conn *pgx.Conn, q string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// CreateSlowFixture creates database db (dropped when the test ends) whose
// dump takes several seconds with PG_DUMP_COMPRESS=9: about 90 MB of hex
// text that gzip compresses slowly. Fault tests need a backup that is still
// running when they strike.
func (e Env) CreateSlowFixture(t testing.TB, db string) {
	t.Helper()
	e.CreateDB(t, db)
	e.Exec(t, db,
		`CREATE TABLE bulk (id int PRIMARY KEY, a text, b text)`,
		`INSERT INTO bulk SELECT g, md5(g::text) || md5((g*7)::text), md5((g*13)::text) FROM generate_series(1, 1200000) g`,
	)
}
