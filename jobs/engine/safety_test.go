package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// editManifest rewrites a stored manifest as a tamperer would.
func editManifest(t *testing.T, s store.Store, name string, edit func(map[string]any)) {
	t.Helper()
	ctx := context.Background()
	rc, err := s.Get(ctx, engine.ManifestKey(engine.MustParseName(name)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := readAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	if err := s.Put(ctx, engine.ManifestKey(engine.MustParseName(name)), bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
}

func (b *bench) engineWith(t *testing.T, s store.Store, signer *engine.Signer) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Options{Conn: b.conn(b.source), Stores: []store.Store{s},
		Finder: &pgtool.Finder{Forced: b.env.PGBin}, WorkDir: t.TempDir(), RowCounts: true, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRowCountsAreRecordedAndVerified(t *testing.T) {
	b := setup(t)
	for _, format := range engine.Formats {
		t.Run(format.String(), func(t *testing.T) {
			t.Parallel()
			mem := store.NewMemory("")
			e := b.engineWith(t, mem, nil)
			ctx := context.Background()
			m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("counted"), Format: format})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{"public.accounts": 5000, "public.events": 10000, "public.blobs": 64}
			for k, v := range want {
				if m.RowCounts[k] != v {
					t.Fatalf("manifest row counts %v; want %s = %d", m.RowCounts, k, v)
				}
			}
			if _, err := e.Verify(ctx, engine.MustParseName("counted"), "", false); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			editManifest(t, mem, "counted", func(m map[string]any) {
				m["row_counts"].(map[string]any)["public.events"] = 10001
			})
			if _, err := e.Verify(ctx, engine.MustParseName("counted"), "", false); !errors.Is(err, engine.ErrRowCountMismatch) ||
				!strings.Contains(err.Error(), "public.events has 10000 rows, manifest says 10001") {
				t.Fatalf("Verify against a wrong count: err = %v, want ErrRowCountMismatch naming public.events", err)
			}
		})
	}
}

// TestRowCountsMatchTheDumpUnderWrites writes to the database all through
// the backup. Counts taken outside the dump's snapshot would not match what
// the dump holds; in the snapshot they match the restored data exactly.
func TestRowCountsMatchTheDumpUnderWrites(t *testing.T) {
	b := setup(t)
	t.Parallel()
	db := testbench.UniqueName("busy")
	b.env.CreateDB(t, db)
	b.env.Exec(t, db, `CREATE TABLE ticks (id bigserial PRIMARY KEY, pad text)`,
		`INSERT INTO ticks (pad) SELECT repeat('x', 500) FROM generate_series(1, 200000)`)
	e := b.engineWith(t, store.NewMemory(""), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var inserted atomic.Int64
	done := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, b.env.PGURL(db))
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(context.Background())
		for ctx.Err() == nil {
			if _, err := conn.Exec(ctx, `INSERT INTO ticks (pad) VALUES ('y')`); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			inserted.Add(1)
		}
		done <- nil
	}()
	m, err := e.Backup(context.Background(), engine.BackupRequest{Name: engine.MustParseName("busy"), Format: engine.FormatCustom, Database: pgtool.MustParseIdent(db)})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if inserted.Load() == 0 {
		t.Fatal("no writes happened during the backup; the test proves nothing")
	}
	target := testbench.UniqueName("busy_restored")
	b.env.DropDBOnCleanup(t, target)
	if _, err := e.Restore(context.Background(), engine.RestoreRequest{Name: engine.MustParseName("busy"), TargetDatabase: pgtool.MustParseIdent(target)}); err != nil {
		t.Fatal(err)
	}
	var restored int64
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	conn, err := pgx.Connect(ctx2, b.env.PGURL(target))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx2)
	if err := conn.QueryRow(ctx2, `SELECT count(*) FROM ticks`).Scan(&restored); err != nil {
		t.Fatal(err)
	}
	if m.RowCounts["public.ticks"] != restored {
		t.Fatalf("manifest says %d rows, the dump restored %d (writes during the backup: %d)", m.RowCounts["public.ticks"], restored, inserted.Load())
	}
}

// TestRestoreDefaultsToTheBackupsDatabase: with no target, a restore goes
// back into the database the backup was taken from.
func TestRestoreDefaultsToTheBackupsDatabase(t *testing.T) {
	b := setup(t)
	t.Parallel()
	db := testbench.UniqueName("origin")
	b.env.CreateDB(t, db)
	b.env.Exec(t, db, `CREATE TABLE kept (x int)`, `INSERT INTO kept SELECT generate_series(1, 42)`)
	e := b.engineWith(t, store.NewMemory(""), nil)
	ctx := context.Background()
	if _, err := e.Backup(ctx, engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("origin"), Database: pgtool.MustParseIdent(db)}); err != nil {
		t.Fatal(err)
	}
	b.env.Exec(t, "postgres", "DROP DATABASE "+db)
	res, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("origin")})
	if err != nil {
		t.Fatal(err)
	}
	if res.TargetDatabase != db || !b.env.DatabaseExists(t, db) {
		t.Fatalf("restore went to %q, want the backup's own database %q", res.TargetDatabase, db)
	}
	if fp := b.env.Fingerprint(t, db); !strings.HasPrefix(fp["table kept"], "42:") {
		t.Fatalf("restored %s = %v, want 42 rows in kept", db, fp)
	}
}

func TestReplaceSwapsAndKeepsTheOldCopy(t *testing.T) {
	b := setup(t)
	for _, format := range []engine.Format{engine.FormatCustom, engine.FormatPlain, engine.FormatDirectory} {
		t.Run(format.String(), func(t *testing.T) {
			t.Parallel()
			e := b.engineWith(t, store.NewMemory(""), nil)
			ctx := context.Background()
			if _, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("swap"), Format: format}); err != nil {
				t.Fatal(err)
			}
			target := testbench.UniqueName("swap_" + format.String())
			b.env.CreateDB(t, target)
			b.env.Exec(t, target, `CREATE TABLE local_only (note text)`, `INSERT INTO local_only VALUES ('before')`)
			before := b.env.Fingerprint(t, target)
			// A session that stays connected to the target, as an
			// application would: the swap must end it, not wait for it.
			held, err := pgx.Connect(ctx, b.env.PGURL(target))
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close(context.Background())
			res, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("swap"), TargetDatabase: pgtool.MustParseIdent(target), Replace: true})
			if err != nil {
				t.Fatalf("replace: %v", err)
			}
			b.env.DropDBOnCleanup(t, res.ReplacedCopy)
			if !strings.HasPrefix(res.ReplacedCopy, target+"_replaced_") || res.SwapDowntimeMS < 0 || !res.RowCountsChecked {
				t.Fatalf("result = %+v; want the old copy named %s_replaced_..., a downtime and checked counts", res, target)
			}
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), b.want); diff != "" {
				t.Fatalf("target after replace differs from the backup:\n%s", diff)
			}
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, res.ReplacedCopy), before); diff != "" {
				t.Fatalf("old copy differs from the old target:\n%s", diff)
			}
			if err := held.Ping(ctx); err == nil {
				t.Fatal("the session on the old target survived the swap")
			}
			assertNoScratch(t, b, target)
		})
	}
}

func TestFailedReplaceLeavesTheTargetAsItWas(t *testing.T) {
	b := setup(t)
	t.Parallel()
	mem := store.NewMemory("")
	e := b.engineWith(t, mem, nil)
	ctx := context.Background()
	if _, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("badcount"), Format: engine.FormatTar}); err != nil {
		t.Fatal(err)
	}
	editManifest(t, mem, "badcount", func(m map[string]any) {
		m["row_counts"].(map[string]any)["public.accounts"] = 4999
	})
	target := testbench.UniqueName("keep")
	b.env.CreateDB(t, target)
	b.env.Exec(t, target, `CREATE TABLE precious (x int)`, `INSERT INTO precious VALUES (1)`)
	before := b.env.Fingerprint(t, target)
	_, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("badcount"), TargetDatabase: pgtool.MustParseIdent(target), Replace: true})
	if !errors.Is(err, engine.ErrRowCountMismatch) {
		t.Fatalf("replace with a wrong count: err = %v, want ErrRowCountMismatch", err)
	}
	if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), before); diff != "" {
		t.Fatalf("failed replace changed the target:\n%s", diff)
	}
	assertNoScratch(t, b, target)
}

// assertNoScratch fails if a replace into target left its scratch
// database behind.
func assertNoScratch(t *testing.T, b *bench, target string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.env.PGURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, engine.ScratchPrefix(target))
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("scratch databases left behind: %v", left)
	}
}

func TestSignedManifestsRefuseTampering(t *testing.T) {
	b := setup(t)
	t.Parallel()
	oldKey := []byte("old-signing-key-0123456789abcdefghij")
	newKey := []byte("new-signing-key-0123456789abcdefghij")
	mem := store.NewMemory("")
	e := b.engineWith(t, mem, engine.NewSigner(oldKey))
	ctx := context.Background()
	m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("signed"), Format: engine.FormatCustom})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Signature) != 64 {
		t.Fatalf("signature %q, want 64 hex digits", m.Signature)
	}
	// After a rotation the old key still verifies old backups.
	rotated := b.engineWith(t, mem, engine.NewSigner(newKey, oldKey))
	if _, err := rotated.Verify(ctx, engine.MustParseName("signed"), "", false); err != nil {
		t.Fatalf("verify with the old key among the accepted ones: %v", err)
	}
	if _, err := b.engineWith(t, mem, engine.NewSigner(newKey)).Verify(ctx, engine.MustParseName("signed"), "", false); !errors.Is(err, engine.ErrSignature) {
		t.Fatalf("verify without the signing key: err = %v, want ErrSignature", err)
	}
	// Point the backup at another database: the signature no longer fits.
	editManifest(t, mem, "signed", func(m map[string]any) { m["database"] = "postgres" })
	target := testbench.UniqueName("signed_target")
	b.env.DropDBOnCleanup(t, target)
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("signed"), TargetDatabase: pgtool.MustParseIdent(target)}); !errors.Is(err, engine.ErrSignature) {
		t.Fatalf("restore of a tampered manifest: err = %v, want ErrSignature", err)
	}
	if b.env.DatabaseExists(t, target) {
		t.Fatal("a refused restore created the target")
	}
	if _, err := e.Verify(ctx, engine.MustParseName("signed"), "", false); !errors.Is(err, engine.ErrSignature) {
		t.Fatalf("verify of a tampered manifest: err = %v, want ErrSignature", err)
	}
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("signed"), TargetDatabase: pgtool.MustParseIdent(target), AllowUnsigned: true}); err != nil {
		t.Fatalf("restore allowing unsigned: %v", err)
	}
}

// TestPlantedMetaCommandIsRefused stores a plain archive with a planted
// \! (which psql would run as a shell command on the worker), with a
// manifest whose checksum matches, as someone with write access to the
// bucket could. The restore refuses it before anything runs.
func TestPlantedMetaCommandIsRefused(t *testing.T) {
	b := setup(t)
	t.Parallel()
	mem := store.NewMemory("")
	e := b.engineWith(t, mem, nil)
	ctx := context.Background()
	if _, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("planted"), Format: engine.FormatPlain}); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "pwned")
	evil := []byte("CREATE TABLE harmless (x int);\n\\! touch " + marker + "\n")
	if err := mem.Put(ctx, engine.ArchiveKey(engine.MustParseName("planted"), engine.FormatPlain, engine.Codec{}), bytes.NewReader(evil), nil); err != nil {
		t.Fatal(err)
	}
	editManifest(t, mem, "planted", func(m map[string]any) {
		setAllSums(m, evil, int64(len(evil)))
	})
	target := testbench.UniqueName("planted_target")
	b.env.DropDBOnCleanup(t, target)
	_, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("planted"), TargetDatabase: pgtool.MustParseIdent(target)})
	if !errors.Is(err, engine.ErrInvalidArchive) {
		t.Fatalf("restore of a planted archive: err = %v, want ErrInvalidArchive", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the planted shell command ran")
	}
	if b.env.DatabaseExists(t, target) {
		t.Fatal("a refused restore created the target")
	}
}
