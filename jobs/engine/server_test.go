package engine_test

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// TestWholeServerBackup backs up every database of a server of its own
// (the shared one has other tests' databases coming and going).
func TestWholeServerBackup(t *testing.T) {
	env := testbench.Require(t).StartPrivate(t)
	port, _ := strconv.Atoi(env.PGPort)
	conn := pgtool.Conn{Host: env.PGHost, Port: port, User: env.PGUser, Password: env.PGPassword, SSLMode: "disable", Database: env.PGDatabase}
	for i, db := range []string{"shop", "audit"} {
		env.Exec(t, "postgres", "CREATE DATABASE "+db)
		env.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, "+strconv.Itoa(100*(i+1))+")")
	}
	mem := store.NewMemory("")
	e, err := engine.New(engine.Options{Conn: conn, Stores: []store.Store{mem}, Finder: &pgtool.Finder{Forced: env.PGBin},
		WorkDir: t.TempDir(), Codec: engine.DefaultCodec, RowCounts: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := map[string]map[string]string{"shop": env.Fingerprint(t, "shop"), "audit": env.Fingerprint(t, "audit")}
	m, err := e.Backup(ctx, engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("whole"), WholeServer: true})
	if err != nil {
		t.Fatalf("whole-server backup: %v", err)
	}
	var dbs []string
	for _, d := range m.Databases {
		dbs = append(dbs, d.Database)
	}
	if m.Content != engine.ContentServer || m.Globals == nil || !slices.Equal(dbs, []string{"audit", env.PGDatabase, "postgres", "shop"}) {
		t.Fatalf("manifest kind %q globals %v databases %v", m.Content, m.Globals, dbs)
	}
	// Each archive is restored chunk by chunk, checked before pg_restore or
	// psql reads it: each needs its own chunk sums and raw size.
	for _, d := range m.Databases {
		if len(d.ChunkSHA256) == 0 || d.RawSizeBytes == 0 {
			t.Fatalf("database %s's archive has %d chunk sums and raw size %d", d.Database, len(d.ChunkSHA256), d.RawSizeBytes)
		}
	}
	if len(m.Globals.ChunkSHA256) == 0 || m.Globals.RawSizeBytes == 0 {
		t.Fatalf("globals have %d chunk sums and raw size %d", len(m.Globals.ChunkSHA256), m.Globals.RawSizeBytes)
	}
	if list, err := e.List(ctx, nil); err != nil || len(list) != 1 || list[0].Content != engine.ContentServer {
		t.Fatalf("list = %+v, %v; want one whole-server backup", list, err)
	}
	if _, err := e.Verify(ctx, engine.MustParseName("whole"), "", false); err != nil {
		t.Fatalf("verify: %v", err)
	}
	env.Exec(t, "postgres", "DROP DATABASE shop", "DROP DATABASE audit")
	res, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("whole"), Databases: []pgtool.Ident{pgtool.MustParseIdent("shop"), pgtool.MustParseIdent("audit")}})
	if err != nil {
		t.Fatalf("restore of two databases: %v", err)
	}
	if !slices.Equal(res.Databases, []string{"shop", "audit"}) {
		t.Fatalf("restored %v", res.Databases)
	}
	for db, fp := range want {
		if diff := testbench.DiffFingerprints(env.Fingerprint(t, db), fp); diff != "" {
			t.Fatalf("%s differs after the restore:\n%s", db, diff)
		}
	}
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("whole"), Databases: []pgtool.Ident{pgtool.MustParseIdent("nope")}}); err == nil {
		t.Fatal("restore of a database the backup does not hold succeeded")
	}
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("whole"), TargetDatabase: pgtool.MustParseIdent("elsewhere")}); err == nil {
		t.Fatal("a whole-server backup restored into one target database")
	}
	if _, err := e.Delete(ctx, engine.MustParseName("whole"), nil); err != nil {
		t.Fatal(err)
	}
	if objs := withoutDeletionRecords(mem.List(ctx, "")); len(objs) != 0 {
		t.Fatalf("after delete the store holds %v", objs)
	}
}
