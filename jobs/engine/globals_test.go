package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
)

func roleExists(t *testing.T, b *bench, role string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.env.PGURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestGlobalsTravelWithTheBackup(t *testing.T) {
	b := setup(t)
	t.Parallel()
	role := testbench.UniqueName("app_reader")
	b.env.Exec(t, "postgres", "CREATE ROLE "+role+" NOLOGIN")
	t.Cleanup(func() { b.env.Exec(t, "postgres", "DROP ROLE IF EXISTS "+role) })
	e, _, mio := b.newEngineWith(t, engine.DefaultCodec)
	ctx := context.Background()
	m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("with-roles"), Format: engine.FormatCustom, IncludeGlobals: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.Globals == nil || !strings.HasSuffix(m.Globals.ArchiveKey, "+globals.sql.zst") || !m.Globals.NoRolePasswords {
		t.Fatalf("manifest globals = %+v; want a companion archive dumped without passwords (not a superuser)", m.Globals)
	}
	b.env.Exec(t, "postgres", "DROP ROLE "+role)
	target := testbench.UniqueName("roles_target")
	b.env.DropDBOnCleanup(t, target)
	res, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("with-roles"), TargetDatabase: pgtool.MustParseIdent(target), RestoreGlobals: true})
	if err != nil {
		t.Fatalf("restore with globals: %v", err)
	}
	if !res.GlobalsRestored || !roleExists(t, b, role) {
		t.Fatalf("role %s not restored (result %+v)", role, res)
	}
	// Again: the role exists now and is left alone.
	again := testbench.UniqueName("roles_again")
	b.env.DropDBOnCleanup(t, again)
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("with-roles"), TargetDatabase: pgtool.MustParseIdent(again), RestoreGlobals: true}); err != nil {
		t.Fatalf("restore with globals over existing roles: %v", err)
	}
	// A backup without globals cannot restore them.
	if _, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("no-roles"), Format: engine.FormatTar}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("no-roles"), TargetDatabase: pgtool.MustParseIdent(again + "x"), RestoreGlobals: true}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("restore_globals of a backup without them: err = %v, want ErrInvalid", err)
	}
	// Delete takes the companion too.
	if _, err := e.Delete(ctx, engine.MustParseName("with-roles"), nil); err != nil {
		t.Fatal(err)
	}
	if objs, _ := mio.List(ctx, "postgres/with-roles"); len(objs) != 0 {
		t.Fatalf("after delete MinIO still holds %v", objs)
	}
}
