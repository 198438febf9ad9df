package engine_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// oldManager makes backups exactly as the old Python manager did:
// pg_dump -F c|p|t|d -f <file>, files at the root of BACKUP_DIR and
// objects under postgres/ in the bucket, and no manifest.
type oldManager struct {
	t     *testing.T
	b     *bench
	db    string
	work  string
	local *store.Local
	mio   *store.MinIO
}

// dump runs pg_dump into a file (a folder for the directory format) in a
// scratch directory and returns its path.
func (o *oldManager) dump(flag, file string, extra ...string) string {
	o.t.Helper()
	out := filepath.Join(o.work, file)
	args := append([]string{"-F", flag, "-f", out, "--no-password"}, extra...)
	cmd := exec.Command(filepath.Join(o.b.env.PGBin, "pg_dump"), append(args, o.db)...)
	cmd.Env = append(os.Environ(), "PGHOST="+o.b.env.PGHost, "PGPORT="+o.b.env.PGPort, "PGUSER="+o.b.env.PGUser,
		"PGPASSWORD="+o.b.env.PGPassword, "PGSSLMODE=disable")
	if msg, err := cmd.CombinedOutput(); err != nil {
		o.t.Fatalf("pg_dump -F %s: %v: %s", flag, err, msg)
	}
	return out
}

// toLocal copies a dump to the root of BACKUP_DIR, an hour old.
func (o *oldManager) toLocal(src, name string) {
	o.t.Helper()
	dst := filepath.Join(o.local.Root(), name)
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			o.t.Fatal(err)
		}
		entries, _ := os.ReadDir(dst)
		for _, e := range entries {
			o.age(filepath.Join(dst, e.Name()))
		}
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		o.t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o640); err != nil {
		o.t.Fatal(err)
	}
	o.age(dst)
}

func (o *oldManager) age(path string) {
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		o.t.Fatal(err)
	}
}

// toBucket uploads a dump under postgres/ (a folder file by file).
func (o *oldManager) toBucket(src, name string) {
	o.t.Helper()
	ctx := context.Background()
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		entries, _ := os.ReadDir(src)
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(src, e.Name()))
			if err := o.mio.Put(ctx, "postgres/"+name+"/"+e.Name(), bytes.NewReader(b), nil); err != nil {
				o.t.Fatal(err)
			}
		}
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		o.t.Fatal(err)
	}
	if err := o.mio.Put(ctx, "postgres/"+name, bytes.NewReader(b), nil); err != nil {
		o.t.Fatal(err)
	}
}

// adoptEngine is an engine over the old manager's stores, signing.
func (b *bench) adoptEngine(t *testing.T, local *store.Local, mio *store.MinIO, minAge time.Duration, db string) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Options{Conn: b.conn(db), Stores: []store.Store{local, mio},
		Finder: &pgtool.Finder{Forced: b.env.PGBin}, WorkDir: t.TempDir(), Jobs: 2,
		Signer: engine.NewSigner([]byte("adopt-test-signing-key-0123456789")), AdoptMinAge: minAge})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func skipReasons(res *engine.AdoptResult) map[string]string {
	out := map[string]string{}
	for _, s := range res.Skipped {
		out[s.Store+":"+s.Key] = s.Reason
	}
	return out
}

func adoptedNames(res *engine.AdoptResult) []string {
	var out []string
	for _, a := range res.Adopted {
		out = append(out, a.Store+":"+a.Key)
	}
	slices.Sort(out)
	return out
}

func TestAdoptOldManagerArchives(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	src := testbench.UniqueName("adopt_src")
	b.env.CreateDB(t, src)
	b.env.Exec(t, src, "CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)",
		"INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g",
		"CREATE VIEW big_items AS SELECT * FROM items WHERE id > 250")
	want := b.env.Fingerprint(t, src)

	root := t.TempDir()
	local, err := store.NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	_, _, mio := b.newEngineWith(t, engine.Codec{})
	old := &oldManager{t: t, b: b, db: src, work: t.TempDir(), local: local, mio: mio}

	custom := old.dump("c", "c.dump")
	old.toLocal(custom, "autograph_scheduled_20240101_020000.dump")
	old.toBucket(custom, "autograph_scheduled_20240101_020000.dump") // same bytes in both: adopted in both
	old.toLocal(old.dump("p", "p.sql"), "backup_20240102_030000.sql")
	old.toLocal(old.dump("t", "t.tar"), "nightly.tar")
	dir := old.dump("d", "d.dir")
	old.toLocal(dir, "backup_20240103_040000")
	old.toBucket(dir, "mio_dir_20240105_000000")
	old.toBucket(old.dump("t", "t2.tar"), "mio_20240104_050000.tar")
	old.toBucket(old.dump("p", "p2.sql"), "mio_plain.sql")
	// The same name with different bytes in the two stores.
	old.toLocal(custom, "differs_20240106_000000.dump")
	old.toBucket(old.dump("c", "c9.dump", "-Z", "9"), "differs_20240106_000000.dump")
	// A corrupt custom dump (its header's version bytes zeroed) and random files.
	corrupt, _ := os.ReadFile(custom)
	copy(corrupt[5:64], make([]byte, 59))
	must(t, os.WriteFile(filepath.Join(old.work, "corrupt"), corrupt, 0o600))
	old.toLocal(filepath.Join(old.work, "corrupt"), "corrupt_20240107_000000.dump")
	must(t, os.WriteFile(filepath.Join(old.work, "random"), bytes.Repeat([]byte("not a dump \x00\x01"), 500), 0o600))
	// SQL without pg_dump's header, and a real plain dump with a shell
	// command appended (which every plain restore refuses).
	must(t, os.WriteFile(filepath.Join(old.work, "notdump"), bytes.Repeat([]byte("SELECT 1;\n"), 50), 0o600))
	old.toLocal(filepath.Join(old.work, "notdump"), "notes_20240110_000000.sql")
	plain, _ := os.ReadFile(old.dump("p", "evil.sql"))
	must(t, os.WriteFile(filepath.Join(old.work, "evil"), append(plain, "\\! touch /tmp/pwned\n"...), 0o600))
	old.toLocal(filepath.Join(old.work, "evil"), "evil_20240109_000000.sql")
	old.toBucket(filepath.Join(old.work, "random"), "random.tar")

	// A backup this service made without compression, then deleted, whose
	// archive a half-failed delete left behind: it looks like an old one.
	svc, err := engine.New(engine.Options{Conn: b.conn(src), Stores: []store.Store{mio},
		Finder: &pgtool.Finder{Forced: b.env.PGBin}, WorkDir: t.TempDir()})
	must(t, err)
	orphan := engine.MustParseName("svc_orphan")
	m, err := svc.Backup(ctx, engine.BackupRequest{Name: orphan, Format: engine.FormatCustom})
	must(t, err)
	rc, err := mio.Get(ctx, m.ArchiveKey)
	must(t, err)
	orphanBytes, err := readAll(rc)
	must(t, err)
	_, err = svc.Delete(ctx, orphan, nil)
	must(t, err)
	must(t, mio.Put(ctx, m.ArchiveKey, bytes.NewReader(orphanBytes), nil))

	e := b.adoptEngine(t, local, mio, 0, src)
	scheduledTarget := func(db string) string {
		if db == src {
			return "app"
		}
		return ""
	}
	dry, err := e.Adopt(ctx, engine.AdoptRequest{DryRun: true, ScheduledTarget: scheduledTarget})
	must(t, err)
	wantAdopted := []string{
		"local:autograph_scheduled_20240101_020000.dump", "local:backup_20240102_030000.sql",
		"local:backup_20240103_040000/", "local:nightly.tar",
		"minio:postgres/autograph_scheduled_20240101_020000.dump", "minio:postgres/mio_20240104_050000.tar",
		"minio:postgres/mio_dir_20240105_000000/", "minio:postgres/mio_plain.sql",
	}
	if got := adoptedNames(dry); !slices.Equal(got, wantAdopted) {
		t.Fatalf("dry run would adopt\n%v\nwant\n%v\nskipped: %+v", got, wantAdopted, dry.Skipped)
	}
	wantSkipped := map[string]string{
		"local:differs_20240106_000000.dump":          engine.SkipDiffers,
		"minio:postgres/differs_20240106_000000.dump": engine.SkipDiffers,
		"local:corrupt_20240107_000000.dump":          engine.SkipNotADump,
		"local:notes_20240110_000000.sql":             engine.SkipNotADump,
		"local:evil_20240109_000000.sql":              engine.SkipNotADump,
		"minio:postgres/random.tar":                   engine.SkipNotADump,
		"minio:postgres/svc_orphan.dump":              engine.SkipDeleted,
	}
	if got := skipReasons(dry); !maps.Equal(got, wantSkipped) {
		t.Fatalf("dry run skipped %v\nwant %v", got, wantSkipped)
	}
	if list, _ := e.List(ctx, nil); len(list) != 0 {
		t.Fatalf("a dry run published %d backups", len(list))
	}
	if _, err := e.Adopt(ctx, engine.AdoptRequest{Plan: strings.Repeat("0", 64)}); !errors.Is(err, engine.ErrPlanChanged) {
		t.Fatalf("adopt with another plan: %v, want ErrPlanChanged", err)
	}

	res, err := e.Adopt(ctx, engine.AdoptRequest{Plan: dry.Plan, ScheduledTarget: scheduledTarget})
	must(t, err)
	if got := adoptedNames(res); !slices.Equal(got, wantAdopted) {
		t.Fatalf("adopted %v, want %v", got, wantAdopted)
	}
	list, err := e.List(ctx, nil)
	must(t, err)
	checkAdoptedList(t, list, src)

	// Every adopted backup restores into a new database equal to the
	// source, from every store holding it (the group waits for them all).
	t.Run("restore", func(t *testing.T) {
		for _, ent := range list {
			for _, from := range ent.Locations {
				t.Run(ent.Name.String()+"/"+from, func(t *testing.T) {
					t.Parallel()
					target := testbench.UniqueName("adopted")
					b.env.DropDBOnCleanup(t, target)
					if _, err := e.Restore(ctx, engine.RestoreRequest{Name: ent.Name, From: from, TargetDatabase: pgtool.MustParseIdent(target)}); err != nil {
						t.Fatalf("restore: %v", err)
					}
					if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), want); diff != "" {
						t.Fatalf("restored database differs from the source:\n%s", diff)
					}
					if _, err := e.Verify(ctx, ent.Name, from, false); err != nil {
						t.Fatalf("verify: %v", err)
					}
				})
			}
		}
	})

	t.Run("drill", func(t *testing.T) {
		scratch := testbench.UniqueName("adopted_drill")
		b.env.DropDBOnCleanup(t, scratch)
		if _, err := e.Drill(ctx, engine.MustParseName("backup_20240103_040000"), pgtool.MustParseIdent(scratch), nil, nil); err != nil {
			t.Fatalf("drill of an adopted directory dump: %v", err)
		}
	})
	t.Run("twice", func(t *testing.T) {
		again, err := e.Adopt(ctx, engine.AdoptRequest{DryRun: true})
		must(t, err)
		if len(again.Adopted) != 0 {
			t.Fatalf("a second adoption would adopt %v", adoptedNames(again))
		}
		if r := skipReasons(again)["local:nightly.tar"]; r != engine.SkipHasManifest {
			t.Fatalf("second run skips nightly.tar for %q, want %q", r, engine.SkipHasManifest)
		}
	})
	t.Run("recent", func(t *testing.T) {
		must(t, os.WriteFile(filepath.Join(root, "fresh_20240108_000000.sql"), []byte("-- PostgreSQL database dump\n"), 0o640))
		waiting := b.adoptEngine(t, local, mio, time.Minute, src)
		r, err := waiting.Adopt(ctx, engine.AdoptRequest{DryRun: true})
		must(t, err)
		if got := skipReasons(r)["local:fresh_20240108_000000.sql"]; got != engine.SkipRecent {
			t.Fatalf("a file written now is skipped for %q, want %q", got, engine.SkipRecent)
		}
	})
	t.Run("delete", func(t *testing.T) {
		name := engine.MustParseName("nightly")
		_, err := e.Delete(ctx, name, nil)
		must(t, err)
		// The old file is the backup's archive: deleting the backup
		// deletes it, and the name is never adopted again.
		if _, err := os.Stat(filepath.Join(root, "nightly.tar")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the adopted archive is still there after delete: %v", err)
		}
		old.toLocal(old.dump("t", "t3.tar"), "nightly.tar")
		r, err := e.Adopt(ctx, engine.AdoptRequest{DryRun: true})
		must(t, err)
		if got := skipReasons(r)["local:nightly.tar"]; got != engine.SkipDeleted {
			t.Fatalf("a deleted adopted name is skipped for %q, want %q", got, engine.SkipDeleted)
		}
	})
}

// checkAdoptedList checks what the listing says of the adopted backups.
func checkAdoptedList(t *testing.T, list []engine.Entry, db string) {
	t.Helper()
	byName := map[string]engine.Entry{}
	for _, ent := range list {
		byName[ent.Name.String()] = ent
		if !ent.Adopted || !ent.Verified || ent.Codec != "" || ent.Database != db {
			t.Errorf("%s: adopted %v verified %v codec %q database %q; want adopted, signed, no codec, %s",
				ent.Name, ent.Adopted, ent.Verified, ent.Codec, ent.Database, db)
		}
	}
	if len(byName) != 7 {
		t.Fatalf("listed %d backups, want 7: %v", len(byName), byName)
	}
	sched := byName["autograph_scheduled_20240101_020000"]
	if !slices.Equal(sched.Locations, []string{store.LocalName, store.MinIOName}) || sched.Target != "app" || !sched.Scheduled ||
		!sched.StartedAt.Equal(time.Date(2024, 1, 1, 2, 0, 0, 0, time.UTC)) || sched.ArchiveKey != "autograph_scheduled_20240101_020000.dump" {
		t.Errorf("scheduled: %+v; want in both stores, target app, scheduled, 2024-01-01T02:00Z, the root file", sched)
	}
	if d := byName["backup_20240103_040000"]; d.Format != engine.FormatDirectory || d.ArchiveKey != "postgres/backup_20240103_040000.dirtar" {
		t.Errorf("directory dump: format %s key %s", d.Format, d.ArchiveKey)
	}
	if n := byName["nightly"]; time.Since(n.StartedAt) < 50*time.Minute || time.Since(n.StartedAt) > 70*time.Minute {
		t.Errorf("nightly (no time in its name) dated %s, want its file's time, an hour ago", n.StartedAt)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// withoutDeletionRecords drops the deletion records (which a delete leaves
// on purpose) from a listing.
func withoutDeletionRecords(objs []store.ObjectInfo, _ error) []store.ObjectInfo {
	return slices.DeleteFunc(objs, func(o store.ObjectInfo) bool { return engine.IsDeletionRecord(o.Key) })
}
