package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// bench holds what every test in this file shares: the servers and one
// fixture database that is only ever read.
type bench struct {
	env    testbench.Env
	source string
	want   map[string]string
}

var (
	sharedOnce  sync.Once
	sharedBench *bench
)

func setup(t *testing.T) *bench {
	t.Helper()
	env := testbench.Require(t)
	sharedOnce.Do(func() {
		// The source outlives the test that creates it (CreateFixture would
		// drop it at that test's end); TestMain drops it.
		src := testbench.UniqueName("src")
		env.Exec(t, "postgres", "CREATE DATABASE "+src)
		env.Exec(t, src, testbench.FixtureStatements()...)
		sharedBench = &bench{env: env, source: src, want: env.Fingerprint(t, src)}
	})
	if sharedBench == nil {
		t.Fatal("fixture setup failed in an earlier test")
	}
	return sharedBench
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedBench != nil {
		ctx := context.Background()
		_ = pgtool.DropDatabase(ctx, pgtool.Conn{Host: sharedBench.env.PGHost, Port: atoi(sharedBench.env.PGPort),
			User: sharedBench.env.PGUser, Password: sharedBench.env.PGPassword, SSLMode: "disable"}, sharedBench.source)
	}
	os.Exit(code)
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func (b *bench) conn(db string) pgtool.Conn {
	return pgtool.Conn{Host: b.env.PGHost, Port: atoi(b.env.PGPort), User: b.env.PGUser,
		Password: b.env.PGPassword, SSLMode: "disable", Database: db}
}

// newEngine returns an engine over a fresh local directory and a fresh
// MinIO bucket, backing up the shared source database by default.
func (b *bench) newEngine(t *testing.T) (*engine.Engine, *store.Local, *store.MinIO) {
	t.Helper()
	return b.newEngineWith(t, engine.DefaultCodec)
}

// codecs are the archive codecs every round trip runs with.
var codecs = map[string]engine.Codec{
	"none": {}, "zstd": engine.DefaultCodec, "gzip": {Name: engine.CodecGzip, Level: 6},
	// pg_dump's own gzip, as every archive made before codecs existed.
	"pg_dump": {PgDump: true},
}

// newEngineWith is newEngine with the given codec.
func (b *bench) newEngineWith(t *testing.T, codec engine.Codec) (*engine.Engine, *store.Local, *store.MinIO) {
	t.Helper()
	local, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bucket := strings.ReplaceAll(testbench.UniqueName("eng"), "_", "-")
	mio, err := store.NewMinIO(context.Background(), store.MinIOConfig{
		Endpoint: b.env.MinIOEndpoint, AccessKey: b.env.MinIOUser, SecretKey: b.env.MinIOPassword,
		Bucket: bucket, PartSize: store.MinPartSize, UploadThreads: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Options{
		Conn:      b.conn(b.source),
		Stores:    []store.Store{local, mio},
		Finder:    &pgtool.Finder{Forced: b.env.PGBin},
		WorkDir:   t.TempDir(),
		Jobs:      2,
		RowCounts: true,
		Codec:     codec,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, local, mio
}

func TestRoundTripAllFormatsAllCodecsAllStores(t *testing.T) {
	b := setup(t)
	for _, storeName := range []string{store.LocalName, store.MinIOName} {
		for _, format := range engine.Formats {
			for codecName, codec := range codecs {
				t.Run(storeName+"/"+format.String()+"/"+codecName, func(t *testing.T) {
					t.Parallel()
					e, _, _ := b.newEngineWith(t, codec)
					ctx := context.Background()
					name := "rt-" + format.String()
					var phases []string
					m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName(name), Format: format, Stores: []string{storeName},
						Progress: func(p engine.Progress) { phases = append(phases, p.Phase) }})
					if err != nil {
						t.Fatalf("Backup: %v", err)
					}
					if m.SizeBytes < 8<<20 || len(m.SHA256) != 64 || m.Format != format || !slices.Equal(m.Stores, []string{storeName}) {
						t.Fatalf("manifest = %+v; want >= 8 MiB, a sha256, format %s, stores [%s]", m, format, storeName)
					}
					if !slices.Contains(phases, "done") {
						t.Errorf("progress phases %v lack \"done\"", phases)
					}
					list, err := e.List(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if len(list) != 1 || list[0].Name.String() != name || !slices.Equal(list[0].Locations, []string{storeName}) {
						t.Fatalf("List = %+v; want one entry %s in [%s]", list, name, storeName)
					}

					target := testbench.UniqueName("rt_" + storeName + "_" + format.String())
					b.env.DropDBOnCleanup(t, target)
					if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName(name), From: storeName, TargetDatabase: pgtool.MustParseIdent(target)}); err != nil {
						t.Fatalf("Restore: %v", err)
					}
					if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), b.want); diff != "" {
						t.Fatalf("restored database differs from source:\n%s", diff)
					}
					if want := codec.String(); m.Codec != want || !strings.HasSuffix(m.ArchiveKey, format.Extension()+codec.Extension()) {
						t.Fatalf("manifest codec %q key %s, want %q and the codec's extension", m.Codec, m.ArchiveKey, want)
					}
				})
			}
		}
	}
}

func TestCleanRestoreOverDriftedDatabase(t *testing.T) {
	b := setup(t)
	for _, format := range []engine.Format{engine.FormatCustom, engine.FormatPlain, engine.FormatDirectory} {
		t.Run(format.String(), func(t *testing.T) {
			t.Parallel()
			e, _, _ := b.newEngine(t)
			ctx := context.Background()
			if _, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("drift"), Format: format, Stores: []string{store.LocalName}}); err != nil {
				t.Fatalf("Backup: %v", err)
			}
			target := testbench.UniqueName("drift_" + format.String())
			b.env.DropDBOnCleanup(t, target)
			if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("drift"), TargetDatabase: pgtool.MustParseIdent(target)}); err != nil {
				t.Fatalf("first Restore: %v", err)
			}
			b.env.Exec(t, target,
				`DELETE FROM events WHERE id % 3 = 0`,
				`UPDATE accounts SET balance = 0 WHERE id < 100`,
				`DROP INDEX accounts_name_idx`,
				`SELECT setval('order_no', 1)`,
			)
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), b.want); diff == "" {
				t.Fatal("drift did not change the fingerprint; the test would prove nothing")
			}
			// Without clean, restoring over existing objects must fail and,
			// being one transaction (or failing on the first object), leave
			// the drifted data as it was.
			if format != engine.FormatDirectory {
				before := b.env.Fingerprint(t, target)
				if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("drift"), TargetDatabase: pgtool.MustParseIdent(target)}); err == nil {
					t.Fatal("Restore without clean over existing objects succeeded, want an error")
				}
				if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), before); diff != "" {
					t.Fatalf("failed restore changed the target:\n%s", diff)
				}
			}
			if format == engine.FormatPlain {
				// A plain archive has no object list: clean would have to
				// drop everything, so it is refused, and replace is the way.
				before := b.env.Fingerprint(t, target)
				if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("drift"), TargetDatabase: pgtool.MustParseIdent(target), Clean: true}); !errors.Is(err, engine.ErrInvalid) {
					t.Fatalf("clean Restore of a plain archive: err = %v, want ErrInvalid", err)
				}
				if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), before); diff != "" {
					t.Fatalf("refused clean restore changed the target:\n%s", diff)
				}
				res, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("drift"), TargetDatabase: pgtool.MustParseIdent(target), Replace: true})
				if err != nil {
					t.Fatalf("replace Restore: %v", err)
				}
				b.env.DropDBOnCleanup(t, res.ReplacedCopy)
				if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, res.ReplacedCopy), before); diff != "" {
					t.Fatalf("the replaced copy %s is not the old target:\n%s", res.ReplacedCopy, diff)
				}
			} else if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("drift"), TargetDatabase: pgtool.MustParseIdent(target), Clean: true}); err != nil {
				t.Fatalf("clean Restore: %v", err)
			}
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), b.want); diff != "" {
				t.Fatalf("after clean restore the database differs from source:\n%s", diff)
			}
		})
	}
}

func TestCorruptArchiveIsRefusedAndTargetUntouched(t *testing.T) {
	b := setup(t)
	for _, storeName := range []string{store.LocalName, store.MinIOName} {
		t.Run(storeName, func(t *testing.T) {
			t.Parallel()
			// zstd: a damaged compressed archive is refused by its checksum
			// before the decoder's error could say anything else.
			e, local, mio := b.newEngineWith(t, engine.DefaultCodec)
			ctx := context.Background()
			m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("corrupt"), Format: engine.FormatCustom, Stores: []string{storeName}})
			if err != nil {
				t.Fatalf("Backup: %v", err)
			}
			var s store.Store = local
			if storeName == store.MinIOName {
				s = mio
			}
			flipByte(t, s, m.ArchiveKey, m.SizeBytes/2)

			target := testbench.UniqueName("corrupt_" + storeName)
			b.env.DropDBOnCleanup(t, target)
			_, err = e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("corrupt"), TargetDatabase: pgtool.MustParseIdent(target)})
			if !errors.Is(err, engine.ErrChecksumMismatch) {
				t.Fatalf("Restore of corrupted archive: err = %v, want ErrChecksumMismatch", err)
			}
			if b.env.DatabaseExists(t, target) {
				t.Fatal("target database was created although the checksum failed")
			}
			// An existing target is not touched either.
			b.env.CreateDB(t, target)
			b.env.Exec(t, target, `CREATE TABLE keep (v int)`, `INSERT INTO keep VALUES (7)`)
			before := b.env.Fingerprint(t, target)
			if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("corrupt"), TargetDatabase: pgtool.MustParseIdent(target), Clean: true}); !errors.Is(err, engine.ErrChecksumMismatch) {
				t.Fatalf("clean Restore of corrupted archive: err = %v, want ErrChecksumMismatch", err)
			}
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), before); diff != "" {
				t.Fatalf("target changed by a refused restore:\n%s", diff)
			}
			if _, err := e.Verify(ctx, engine.MustParseName("corrupt"), "", false); !errors.Is(err, engine.ErrChecksumMismatch) {
				t.Fatalf("Verify of corrupted archive: err = %v, want ErrChecksumMismatch", err)
			}
		})
	}
}

// flipByte rewrites an object with one byte changed and the same size.
func flipByte(t *testing.T, s store.Store, key string, at int64) {
	t.Helper()
	ctx := context.Background()
	rc, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := readAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	data[at] ^= 0xFF
	if err := s.Put(ctx, key, strings.NewReader(string(data)), nil); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteFromChosenStoresOnly(t *testing.T) {
	b := setup(t)
	t.Parallel()
	e, local, mio := b.newEngine(t)
	ctx := context.Background()
	m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("both"), Format: engine.FormatTar, Stores: []string{store.LocalName, store.MinIOName}})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if !slices.Equal(m.Stores, []string{store.LocalName, store.MinIOName}) {
		t.Fatalf("manifest stores = %v, want [local minio]", m.Stores)
	}
	list, err := e.List(ctx, nil)
	if err != nil || len(list) != 1 || !slices.Equal(list[0].Locations, []string{store.LocalName, store.MinIOName}) {
		t.Fatalf("List = %+v, %v; want one entry in [local minio]", list, err)
	}
	// Both copies are byte-identical: one stream was fanned out.
	if a, b2 := objectSum(t, local, m.ArchiveKey), objectSum(t, mio, m.ArchiveKey); a != b2 {
		t.Fatalf("local and minio archives differ: %s vs %s", a, b2)
	}

	deleted, err := e.Delete(ctx, engine.MustParseName("both"), []string{store.MinIOName})
	if err != nil || !slices.Equal(deleted, []string{store.MinIOName}) {
		t.Fatalf("Delete(minio) = %v, %v; want [minio]", deleted, err)
	}
	for _, k := range []string{m.ArchiveKey, engine.ManifestKey(engine.MustParseName("both"))} {
		if _, err := mio.Stat(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("minio %s after delete: err = %v, want not found", k, err)
		}
		if _, err := local.Stat(ctx, k); err != nil {
			t.Errorf("local %s after deleting from minio only: %v", k, err)
		}
	}
	list, err = e.List(ctx, nil)
	if err != nil || len(list) != 1 || !slices.Equal(list[0].Locations, []string{store.LocalName}) {
		t.Fatalf("List after minio delete = %+v, %v; want locations [local]", list, err)
	}
	if list, err := e.List(ctx, []string{store.MinIOName}); err != nil || len(list) != 0 {
		t.Fatalf("List(minio) = %+v, %v; want empty", list, err)
	}
	if _, err := e.Delete(ctx, engine.MustParseName("both"), []string{store.MinIOName}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("second Delete(minio): err = %v, want ErrNotFound", err)
	}
	if _, err := e.Delete(ctx, engine.MustParseName("both"), nil); err != nil {
		t.Fatalf("Delete(all): %v", err)
	}
	objs := withoutDeletionRecords(local.List(ctx, ""))
	if len(objs) != 0 {
		t.Fatalf("local store after delete holds %v", objs)
	}
}

func TestBackupRefusals(t *testing.T) {
	b := setup(t)
	t.Parallel()
	e, local, _ := b.newEngine(t)
	ctx := context.Background()
	if _, err := e.Backup(ctx, engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("dup"), Stores: []string{store.LocalName}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  engine.BackupRequest
		want error
	}{
		{"existing name", engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("dup"), Stores: []string{store.MinIOName}}, engine.ErrExists},
		// A bad name, format or database cannot reach the engine
		// (ParseName, ParseFormat and ParseBackupDatabase refuse them, see
		// TestValidateName, TestParseFormat and TestParseDatabase); none
		// at all is refused.
		{"no name", engine.BackupRequest{Format: engine.FormatCustom, Stores: []string{store.LocalName}}, engine.ErrInvalid},
		{"no format", engine.BackupRequest{Name: engine.MustParseName("x")}, engine.ErrInvalid},
		{"whole server and a database", engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("x"),
			WholeServer: true, Database: pgtool.MustParseIdent("x")}, engine.ErrInvalid},
		{"unknown store", engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("x"), Stores: []string{"s3"}}, engine.ErrInvalid},
	}
	for _, tt := range tests {
		if _, err := e.Backup(ctx, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	// pg_dump failing (database does not exist) publishes nothing.
	_, err := e.Backup(ctx, engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("nodb"), Database: pgtool.MustParseIdent("no_such_db"), Stores: []string{store.LocalName, store.MinIOName}})
	if err == nil || !strings.Contains(err.Error(), "no_such_db") {
		t.Fatalf("backup of missing database: err = %v, want an error naming no_such_db", err)
	}
	list, _ := e.List(ctx, nil)
	if len(list) != 1 || list[0].Name.String() != "dup" {
		t.Fatalf("List after failed backup = %+v, want only dup", list)
	}
	objs, _ := local.List(ctx, "")
	for _, o := range objs {
		if strings.Contains(o.Key, "nodb") {
			t.Fatalf("failed backup left %s in the local store", o.Key)
		}
	}
}

func TestRetriedTaskGetsItsOwnFinishedBackup(t *testing.T) {
	b := setup(t)
	t.Parallel()
	e, _, _ := b.newEngine(t)
	ctx := context.Background()
	first, err := e.Backup(ctx, engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("idem"), Stores: []string{store.LocalName}, TaskID: "task-1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.Backup(ctx, engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("idem"), Stores: []string{store.LocalName}, TaskID: "task-1"})
	if err != nil || again.SHA256 != first.SHA256 {
		t.Fatalf("retry of the same task: %v, %v; want the first manifest back", again, err)
	}
	if _, err := e.Backup(ctx, engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("idem"), Stores: []string{store.LocalName}, TaskID: "task-2"}); !errors.Is(err, engine.ErrExists) {
		t.Fatalf("other task with the same name: err = %v, want ErrExists", err)
	}
}

func TestOrphanArchiveIsNotListed(t *testing.T) {
	b := setup(t)
	t.Parallel()
	e, local, _ := b.newEngine(t)
	ctx := context.Background()
	// What a crash between archive and manifest leaves behind.
	if err := os.MkdirAll(filepath.Join(local.Root(), "postgres"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(local.Root(), "postgres", "orphan.dump"), []byte("PGDMP..."), 0o600); err != nil {
		t.Fatal(err)
	}
	list, err := e.List(ctx, nil)
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v; want nothing for an archive without manifest", list, err)
	}
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("orphan")}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("Restore of orphan: err = %v, want ErrNotFound", err)
	}
}

func objectSum(t *testing.T, s store.Store, key string) string {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := readAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return sha(data)
}

// TestThirdStoreByName adds a third backend beside the local directory and
// MinIO. Nothing in the engine knows it: it is chosen, listed, restored
// from and deleted from by its name alone, which is what adding a backend
// has to cost.
func TestThirdStoreByName(t *testing.T) {
	b := setup(t)
	t.Parallel()
	local, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mem := store.NewMemory("vault")
	e, err := engine.New(engine.Options{Conn: b.conn(b.source), Stores: []store.Store{local, mem},
		Finder: &pgtool.Finder{Forced: b.env.PGBin}, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.StoreNames(); !slices.Equal(got, []string{store.LocalName, "vault"}) {
		t.Fatalf("StoreNames = %v, want [local vault]", got)
	}
	ctx := context.Background()
	m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("third"), Format: engine.FormatTar, Stores: []string{"vault"}})
	if err != nil {
		t.Fatalf("Backup into the third store: %v", err)
	}
	if objs, _ := local.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("the local store holds %v; the backup asked for vault only", objs)
	}
	if got := objectSum(t, mem, m.ArchiveKey); got != m.SHA256 {
		t.Fatalf("vault holds an archive with sha256 %s, manifest says %s", got, m.SHA256)
	}
	list, err := e.List(ctx, []string{"vault"})
	if err != nil || len(list) != 1 || !slices.Equal(list[0].Locations, []string{"vault"}) {
		t.Fatalf("List(vault) = %+v, %v; want one backup located in vault", list, err)
	}
	target := testbench.UniqueName("third_restored")
	b.env.DropDBOnCleanup(t, target)
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("third"), From: "vault", TargetDatabase: pgtool.MustParseIdent(target)}); err != nil {
		t.Fatalf("Restore from vault: %v", err)
	}
	if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), b.want); diff != "" {
		t.Fatalf("restored from vault differs from the source:\n%s", diff)
	}
	if _, err := e.Backup(ctx, engine.BackupRequest{Format: engine.FormatCustom, Name: engine.MustParseName("nowhere"), Stores: []string{"s3"}}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("Backup into an unconfigured store: err = %v, want ErrInvalid", err)
	}
	if deleted, err := e.Delete(ctx, engine.MustParseName("third"), []string{"vault"}); err != nil || !slices.Equal(deleted, []string{"vault"}) {
		t.Fatalf("Delete from vault = %v, %v", deleted, err)
	}
	if objs := withoutDeletionRecords(mem.List(ctx, "")); len(objs) != 0 {
		t.Fatalf("vault still holds %v after delete", objs)
	}
}
