package engine_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
)

// closedPort returns a local port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// TestRealToolFailuresAreClassified makes psql fail in each way the error
// table knows, against the real server, with and without SQLSTATEs in its
// messages (pg_restore prints none), and checks which are retried.
func TestRealToolFailuresAreClassified(t *testing.T) {
	b := setup(t)
	t.Parallel()
	ctx := context.Background()
	tools, err := (&pgtool.Finder{Forced: b.env.PGBin}).Newest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	role := testbench.UniqueName("nocreate")
	b.env.Exec(t, "postgres", "CREATE ROLE "+role+" NOLOGIN")
	t.Cleanup(func() { b.env.Exec(t, "postgres", "DROP ROLE IF EXISTS "+role) })
	ok := b.conn("postgres")
	badPassword, noDB, down := ok, ok.WithDatabase(testbench.UniqueName("nosuch")), ok
	badPassword.Password = "not-" + ok.Password
	down.Port = closedPort(t)
	tests := []struct {
		name string
		conn pgtool.Conn
		sql  string
		want error // nil: retried
	}{
		{"duplicate", ok, "CREATE TEMP TABLE d (x int); CREATE TEMP TABLE d (x int);", pgtool.ErrObjectExists},
		{"undefined", ok, "SELECT * FROM no_such_table;", pgtool.ErrUndefinedObject},
		{"undefined function", ok, "SELECT no_such_function(1);", pgtool.ErrUndefinedObject},
		{"syntax", ok, "SELEC 1;", pgtool.ErrSQLSyntax},
		{"constraint", ok, "CREATE TEMP TABLE u (x int PRIMARY KEY); INSERT INTO u VALUES (1), (1);", pgtool.ErrConstraint},
		{"permission", ok, "SET ROLE " + role + "; CREATE TABLE public.refused (x int);", pgtool.ErrPermission},
		{"no such database", noDB, "SELECT 1;", pgtool.ErrNoDatabase},
		{"authentication", badPassword, "SELECT 1;", pgtool.ErrAuth},
		{"connection refused", down, "SELECT 1;", nil},
		{"connection terminated", ok, "SELECT pg_terminate_backend(pg_backend_pid());", nil},
		// The notice says "does not exist"; what failed is the connection.
		{"terminated after a notice", ok, "DROP TABLE IF EXISTS no_such_table; SELECT pg_terminate_backend(pg_backend_pid());", nil},
		{"statement timeout", ok, "SET statement_timeout = '20ms'; SELECT pg_sleep(2);", nil},
	}
	for _, tt := range tests {
		for _, verbosity := range []string{"default", "verbose"} {
			t.Run(tt.name+"/"+verbosity, func(t *testing.T) {
				t.Parallel()
				err := tools.Command(ctx, tt.conn, "psql", "--no-psqlrc", "--no-password", "--set=ON_ERROR_STOP=1",
					"--set=VERBOSITY="+verbosity, "--command="+tt.sql).Run()
				var te *pgtool.ToolError
				if !errors.As(err, &te) {
					t.Fatalf("err = %v, want a *pgtool.ToolError", err)
				}
				if te.FirstError == "" || !strings.Contains(err.Error(), te.FirstError) {
					t.Fatalf("FirstError = %q, not found in %q", te.FirstError, err)
				}
				if te.Kind != tt.want {
					t.Fatalf("class of %q = %v, want %v", te.Stderr, te.Kind, tt.want)
				}
				if got := tasks.Permanent(err); got != (tt.want != nil) {
					t.Fatalf("tasks.Permanent(%q) = %v, want %v", err, got, tt.want != nil)
				}
			})
		}
	}
}

// salesDB creates a database holding a schema "sales" (the new
// user's) and a table orders of rows rows of about 40 bytes each.
func salesDB(t *testing.T, b *bench, rows string) string {
	t.Helper()
	db := testbench.UniqueName("sales")
	b.env.CreateDB(t, db)
	b.env.Exec(t, db, `CREATE SCHEMA sales`, `CREATE TABLE sales.regions (id int)`,
		`CREATE TABLE orders (id int PRIMARY KEY, note text)`,
		`INSERT INTO orders SELECT i, md5(i::text) FROM generate_series(1, `+rows+`) i`)
	return db
}

// TestRestoreIntoNonEmptyDatabaseIsRefused: with neither clean nor
// replace, a restore into an existing database holding tables fails at once
// (permanently, naming the choices) and leaves it as it was; an existing
// empty database is restored into.
func TestRestoreIntoNonEmptyDatabaseIsRefused(t *testing.T) {
	b := setup(t)
	for _, format := range []engine.Format{engine.FormatCustom, engine.FormatPlain, engine.FormatDirectory} {
		t.Run(format.String(), func(t *testing.T) {
			t.Parallel()
			db := salesDB(t, b, "100")
			e := b.engineWith(t, store.NewMemory(""), nil)
			ctx := context.Background()
			name := engine.MustParseName("own")
			if _, err := e.Backup(ctx, engine.BackupRequest{Format: format, Name: name, Database: pgtool.MustParseIdent(db)}); err != nil {
				t.Fatal(err)
			}
			b.env.Exec(t, db, `INSERT INTO orders VALUES (1000000, 'after the backup')`)
			before := b.env.Fingerprint(t, db)
			_, err := e.Restore(ctx, engine.RestoreRequest{Name: name})
			if !errors.Is(err, engine.ErrNotEmpty) || !tasks.Permanent(err) {
				t.Fatalf("restore into its own non-empty database: err = %v, want a permanent ErrNotEmpty", err)
			}
			for _, word := range []string{`"clean"`, `"replace"`, `"target_database"`, db} {
				if !strings.Contains(err.Error(), word) {
					t.Errorf("error %q does not name %s", err, word)
				}
			}
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, db), before); diff != "" {
				t.Fatalf("refused restore changed the database:\n%s", diff)
			}
			empty := testbench.UniqueName("empty")
			b.env.CreateDB(t, empty)
			if _, err := e.Restore(ctx, engine.RestoreRequest{Name: name, TargetDatabase: pgtool.MustParseIdent(empty)}); err != nil {
				t.Fatalf("restore into an existing empty database: %v", err)
			}
			if fp := b.env.Fingerprint(t, empty); !strings.HasPrefix(fp["table orders"], "100:") {
				t.Fatalf("restored %v, want 100 rows in orders", fp)
			}
		})
	}
}

// TestStreamedRestoreReportsPgRestoresError: pg_restore stops at a schema
// in the way while the archive is still being written into it; the error
// is pg_restore's, naming the schema, and permanent, never the write's
// "broken pipe". The small archive (more than the pipe and the held-back
// tail can take at once) is the one where the last write used to lose
// that race; the large one fails while streaming.
func TestStreamedRestoreReportsPgRestoresError(t *testing.T) {
	b := setup(t)
	for _, size := range []struct {
		name, rows string
		min, max   int64
	}{{"small", "2300", 64 << 10, 128 << 10}, {"large", "100000", 1 << 20, 1 << 30}} {
		for _, format := range []engine.Format{engine.FormatCustom, engine.FormatTar} {
			t.Run(size.name+"/"+format.String(), func(t *testing.T) {
				t.Parallel()
				db := salesDB(t, b, size.rows)
				e, err := engine.New(engine.Options{Conn: b.conn(db), Stores: []store.Store{store.NewMemory("")},
					Finder: &pgtool.Finder{Forced: b.env.PGBin}, WorkDir: t.TempDir(), Codec: engine.Codec{PgDump: true}, Compress: "0"})
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				name := engine.MustParseName("conflict")
				m, err := e.Backup(ctx, engine.BackupRequest{Format: format, Name: name})
				if err != nil {
					t.Fatal(err)
				}
				if m.SizeBytes <= size.min || m.SizeBytes > size.max {
					t.Fatalf("archive is %d bytes, want (%d, %d] for this case to test what it claims", m.SizeBytes, size.min, size.max)
				}
				target := testbench.UniqueName("conflict")
				b.env.CreateDB(t, target)
				b.env.Exec(t, target, `CREATE SCHEMA sales`)
				for range 3 {
					_, err = e.Restore(ctx, engine.RestoreRequest{Name: name, TargetDatabase: pgtool.MustParseIdent(target)})
					if err == nil || strings.Contains(err.Error(), "broken pipe") || !strings.Contains(err.Error(), `schema "sales" already exists`) {
						t.Fatalf("err = %v, want pg_restore's error naming schema sales, not the pipe's", err)
					}
					if !errors.Is(err, pgtool.ErrObjectExists) || !tasks.Permanent(err) {
						t.Fatalf("err = %v: want ErrObjectExists, permanent", err)
					}
				}
			})
		}
	}
}
