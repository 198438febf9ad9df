package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// These tests play someone who can write the bucket (the archives and
// the manifests), but not the signing key. They check that an archive the
// manifest does not vouch for never reaches pg_restore: not its first
// chunk, not a chunk in the middle, not padding after a valid dump.

// testChunk is the chunk size of these tests' backups: small, so that a
// small database's archive has many chunks.
const testChunk = 64 << 10

// capturingTools is a copy of the bench's client tools whose pg_restore
// appends every byte it reads from its standard input to the returned
// file: what a restore handed the tool, whatever became of it.
func capturingTools(t *testing.T, b *bench) (dir, seen string) {
	t.Helper()
	dir = t.TempDir()
	for _, name := range []string{"pg_dump", "pg_dumpall", "psql"} {
		if err := os.Symlink(filepath.Join(b.env.PGBin, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	seen = filepath.Join(t.TempDir(), "seen")
	// exec: the engine's kill reaches pg_restore itself; tee is its
	// child reading the engine's pipe.
	script := "#!/bin/bash\nexec '" + filepath.Join(b.env.PGBin, "pg_restore") + "' \"$@\" < <(exec tee -a '" + seen + "')\n"
	if err := os.WriteFile(filepath.Join(dir, "pg_restore"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, seen
}

// seenBytes is what the capturing pg_restore has read so far.
func seenBytes(t *testing.T, seen string) []byte {
	t.Helper()
	b, err := os.ReadFile(seen)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forgeryEngine backs up and restores without a codec (the stored bytes
// are pg_dump's), in chunks of testChunk, with the given tools.
func (b *bench) forgeryEngine(t *testing.T, s store.Store, tools string, signer *engine.Signer) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Options{Conn: b.conn(b.source), Stores: []store.Store{s}, Finder: &pgtool.Finder{Forced: tools},
		WorkDir: t.TempDir(), Signer: signer, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func objectBytes(t *testing.T, s store.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := readAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func putObject(t *testing.T, s store.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
}

// setWholeSum is the tamperer's edit of a manifest written before chunk
// sums: size and SHA-256 made to match data.
func setWholeSum(m map[string]any, data []byte) {
	m["size_bytes"], m["sha256"] = len(data), sha(data)
}

// setAllSums also recomputes the chunk sums (and, when raw > 0, the raw
// size): everything a manifest says about its archive, as only a
// signature can refuse.
func setAllSums(m map[string]any, data []byte, raw int64) {
	setWholeSum(m, data)
	size, _ := m["chunk_size"].(json.Number).Int64()
	var sums []any
	for off := int64(0); off < int64(len(data)); off += size {
		sum := sha256.Sum256(data[off:min(off+size, int64(len(data)))])
		sums = append(sums, hex.EncodeToString(sum[:]))
	}
	m["chunk_sha256"] = sums
	if raw > 0 {
		m["raw_size_bytes"] = raw
	}
}

// keepDB makes a database holding one table the forged archives also
// hold, with other rows: a clean restore of one of them would change it.
func keepDB(t *testing.T, b *bench, prefix string, value, rows int) string {
	t.Helper()
	db := testbench.UniqueName(prefix)
	b.env.CreateDB(t, db)
	b.env.Exec(t, db, `CREATE TABLE keep (v int, pad text)`,
		`INSERT INTO keep SELECT g * `+strconv.Itoa(value)+`, repeat(md5(g::text), 8) FROM generate_series(1, `+strconv.Itoa(rows)+`) g`)
	return db
}

// TestForgedArchivesNeverReachPgRestore: the archive of a backup is
// replaced by another valid dump (database A), followed by padding so
// that pg_restore would have read its last block long before the end:
// once padded to the original's size with the manifest left alone, and
// once with the manifest's size and sha256 made to match. The restore must fail, pg_restore must not have read a
// single byte, and the target must be exactly as it was. With a signing
// key, an attacker who recomputes the chunk sums too is refused by the
// signature.
func TestForgedArchivesNeverReachPgRestore(t *testing.T) {
	b := setup(t)
	t.Parallel()
	ctx := context.Background()
	key := []byte("forgery-test-signing-key-0123456789ab")
	for _, tc := range []struct {
		name    string
		signer  *engine.Signer
		edit    func(m map[string]any, forged []byte)
		wantErr error
	}{
		{"manifest left alone", nil, nil, engine.ErrChecksumMismatch},
		{"size and sha256 edited", nil, setWholeSum, engine.ErrChecksumMismatch},
		{"signed, every sum recomputed", engine.NewSigner(key), func(m map[string]any, forged []byte) { setAllSums(m, forged, 0) }, engine.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tools, seen := capturingTools(t, b)
			mem := store.NewMemory("")
			e := b.forgeryEngine(t, mem, tools, tc.signer)
			victim := keepDB(t, b, "victim", 1, 4000)
			other := keepDB(t, b, "dbA", 666, 1000)
			vm, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("victim"), Format: engine.FormatCustom, Database: pgtool.MustParseIdent(victim)})
			if err != nil {
				t.Fatal(err)
			}
			am, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("a"), Format: engine.FormatCustom, Database: pgtool.MustParseIdent(other)})
			if err != nil {
				t.Fatal(err)
			}
			forged := append(objectBytes(t, mem, am.ArchiveKey), make([]byte, 1<<20)...)
			if tc.edit == nil {
				// Same size as the original, so that the listing, which
				// checks sizes, still offers the backup.
				if int64(len(forged)) < vm.SizeBytes+64<<10 {
					t.Fatalf("database A's archive is not small enough to pad (%d bytes, the victim's %d)", len(forged)-1<<20, vm.SizeBytes)
				}
				forged = forged[:vm.SizeBytes]
			}
			putObject(t, mem, vm.ArchiveKey, forged)
			if tc.edit != nil {
				editManifest(t, mem, "victim", func(m map[string]any) { tc.edit(m, forged) })
			}
			before := b.env.Fingerprint(t, victim)
			_, err = e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("victim"), TargetDatabase: pgtool.MustParseIdent(victim), Clean: true})
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, victim), before); diff != "" {
				t.Errorf("the forged restore changed the target (err = %v):\n%s", err, diff)
			}
			if n := len(seenBytes(t, seen)); n != 0 {
				t.Errorf("pg_restore read %d bytes of the forged archive", n)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("restore of a forged archive: err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestReplacedMiddleChunkIsRefusedBeforePgRestoreReadsIt changes one byte
// in a chunk in the middle of an archive: pg_restore gets the chunks
// before it, never a byte of that chunk, and the single transaction rolls
// back.
func TestReplacedMiddleChunkIsRefusedBeforePgRestoreReadsIt(t *testing.T) {
	b := setup(t)
	t.Parallel()
	ctx := context.Background()
	tools, seen := capturingTools(t, b)
	mem := store.NewMemory("")
	e := b.forgeryEngine(t, mem, tools, nil)
	m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("middle"), Format: engine.FormatCustom})
	if err != nil {
		t.Fatal(err)
	}
	if m.ChunkSize != testChunk || len(m.ChunkSHA256) < 8 || m.RawSizeBytes != m.SizeBytes {
		t.Fatalf("manifest: chunk size %d, %d chunk sums, raw size %d of %d; want %d, at least 8, the stored size (no codec)",
			m.ChunkSize, len(m.ChunkSHA256), m.RawSizeBytes, m.SizeBytes, testChunk)
	}
	archive := objectBytes(t, mem, m.ArchiveKey)
	bad := int64(len(m.ChunkSHA256) / 2)
	flipByte(t, mem, m.ArchiveKey, bad*testChunk+testChunk/2)
	target := keepDB(t, b, "middle", 3, 1000)
	before := b.env.Fingerprint(t, target)
	_, err = e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("middle"), TargetDatabase: pgtool.MustParseIdent(target), Clean: true})
	if !errors.Is(err, engine.ErrChecksumMismatch) || !strings.Contains(err.Error(), "chunk "+strconv.Itoa(int(bad))+" ") {
		t.Fatalf("restore with chunk %d replaced: err = %v, want ErrChecksumMismatch naming it", bad, err)
	}
	got := seenBytes(t, seen)
	if int64(len(got)) > bad*testChunk || !bytes.Equal(got, archive[:len(got)]) {
		t.Fatalf("pg_restore read %d bytes (the archive's own: %v); want at most the %d bytes before chunk %d",
			len(got), bytes.Equal(got, archive[:min(len(got), len(archive))]), bad*testChunk, bad)
	}
	if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), before); diff != "" {
		t.Fatalf("a refused restore changed the target:\n%s", diff)
	}
}

// evilDB is a database whose restore runs a program on the database
// server: an index on an "immutable" function that runs COPY ... TO
// PROGRAM 'cat > <marker>' when the index is built, as pg_restore does
// after loading the data. It returns the database and the marker.
func evilDB(t *testing.T, b *bench) (db, marker string) {
	t.Helper()
	// The server runs as another user when the tests run as root: the
	// marker's directory must be writable by it.
	dir, err := os.MkdirTemp("", "pgbackup-marker-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	marker = filepath.Join(dir, "ran")
	grantServerPrograms(t, b)
	db = testbench.UniqueName("evil")
	b.env.CreateDB(t, db)
	b.env.Exec(t, db, `CREATE TABLE keep (v int, pad text)`, `INSERT INTO keep VALUES (1, 'x')`,
		// COPY is refused in a non-volatile function, not in a volatile
		// one that an "immutable" one calls. The program reads what COPY
		// writes (touch would not, and COPY could fail on a closed pipe).
		`CREATE FUNCTION public.run_it() RETURNS void LANGUAGE plpgsql AS $$
		 BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''cat > `+marker+`'''; END $$`,
		`CREATE FUNCTION public.evil(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
		 BEGIN PERFORM public.run_it(); RETURN $1; END $$`,
		`CREATE INDEX keep_evil ON keep (public.evil(v))`)
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the evil function did not run when its index was built (%v): the test would prove nothing", err)
	}
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	return db, marker
}

// grantServerPrograms lets the bench's role run COPY ... TO PROGRAM (as
// a restore by a superuser could) until the test ends, granted by the
// superuser over the bench's socket (local connections are trusted).
func grantServerPrograms(t *testing.T, b *bench) {
	t.Helper()
	ctx := context.Background()
	q := url.Values{"host": {b.env.PGSocket}, "port": {b.env.PGPort}, "sslmode": {"disable"}}
	conn, err := pgx.Connect(ctx, (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/postgres", RawQuery: q.Encode()}).String())
	if err != nil {
		t.Fatalf("connect as postgres: %v", err)
	}
	role := pgx.Identifier{b.env.PGUser}.Sanitize()
	if _, err := conn.Exec(ctx, "GRANT pg_execute_server_program TO "+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(ctx, "REVOKE pg_execute_server_program FROM "+role); err != nil {
			t.Errorf("revoke: %v", err)
		}
		_ = conn.Close(ctx)
	})
}

// TestForgedArchiveThatRunsAProgramNeverRuns swaps a backup's archive
// for a valid dump whose restore runs a program on the server (COPY TO
// PROGRAM, through an index on a plpgsql function). Restored as itself it
// does run the program; restored under the forged backup's name it must
// not, with a manifest with chunk sums and with one written before them.
func TestForgedArchiveThatRunsAProgramNeverRuns(t *testing.T) {
	b := setup(t)
	t.Parallel()
	ctx := context.Background()
	tools, seen := capturingTools(t, b)
	mem := store.NewMemory("")
	e := b.forgeryEngine(t, mem, tools, nil)
	evil, marker := evilDB(t, b)
	em, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("evil"), Format: engine.FormatCustom, Database: pgtool.MustParseIdent(evil)})
	if err != nil {
		t.Fatal(err)
	}
	proof := testbench.UniqueName("evil_proof")
	b.env.DropDBOnCleanup(t, proof)
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("evil"), TargetDatabase: pgtool.MustParseIdent(proof)}); err != nil {
		t.Fatalf("restore of the evil backup as itself: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("restoring the evil archive did not run its program (%v): the test would prove nothing", err)
	}
	_ = os.Remove(marker)
	_ = os.Remove(seen)
	evilBytes := objectBytes(t, mem, em.ArchiveKey)
	for _, tc := range []struct {
		name  string
		sized bool // the manifest's size and sha256 are the forgery's
		edit  func(m map[string]any)
	}{
		{"chunk sums", false, nil},
		{"chunk sums, size and sha256 edited", true, func(m map[string]any) { setWholeSum(m, evilBytes) }},
		{"manifest without chunk sums", false, func(m map[string]any) {
			delete(m, "chunk_size")
			delete(m, "chunk_sha256")
			delete(m, "raw_size_bytes")
		}},
	} {
		name := engine.MustParseName("victim-" + strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), ",", ""))
		vm, err := e.Backup(ctx, engine.BackupRequest{Name: name, Format: engine.FormatCustom})
		if err != nil {
			t.Fatal(err)
		}
		if tc.edit != nil {
			editManifest(t, mem, name.String(), tc.edit)
		}
		// Padded to the original's size, as the listing checks sizes;
		// pg_restore ignores what follows the dump.
		forged := evilBytes
		if !tc.sized {
			forged = append(bytes.Clone(evilBytes), make([]byte, vm.SizeBytes-int64(len(evilBytes)))...)
		}
		putObject(t, mem, vm.ArchiveKey, forged)
		target := testbench.UniqueName("evil_target")
		b.env.DropDBOnCleanup(t, target)
		_, err = e.Restore(ctx, engine.RestoreRequest{Name: name, TargetDatabase: pgtool.MustParseIdent(target)})
		if _, serr := os.Stat(marker); serr == nil {
			t.Fatalf("%s: the forged archive's program ran (err = %v)", tc.name, err)
		}
		if !errors.Is(err, engine.ErrChecksumMismatch) {
			t.Fatalf("%s: restore of the swapped archive: err = %v, want ErrChecksumMismatch", tc.name, err)
		}
		if n := len(seenBytes(t, seen)); n != 0 {
			t.Fatalf("%s: pg_restore read %d bytes of the forged archive", tc.name, n)
		}
		if b.env.DatabaseExists(t, target) {
			t.Fatalf("%s: a refused restore created the target", tc.name)
		}
	}
}

// TestManifestsWithoutChunkSumsStillRestore: a manifest written before
// chunk sums restores (from a copy in WORK_DIR checked whole first), for
// both streamed formats, and leaves nothing in WORK_DIR.
func TestManifestsWithoutChunkSumsStillRestore(t *testing.T) {
	b := setup(t)
	for _, format := range []engine.Format{engine.FormatCustom, engine.FormatTar} {
		t.Run(format.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			mem := store.NewMemory("")
			work := t.TempDir()
			e, err := engine.New(engine.Options{Conn: b.conn(b.source), Stores: []store.Store{mem}, Finder: &pgtool.Finder{Forced: b.env.PGBin},
				WorkDir: work, Codec: engine.DefaultCodec})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("older"), Format: format}); err != nil {
				t.Fatal(err)
			}
			editManifest(t, mem, "older", func(m map[string]any) {
				for _, k := range []string{"chunk_size", "chunk_sha256", "raw_size_bytes"} {
					if _, ok := m[k]; !ok {
						t.Fatalf("new manifest has no %s", k)
					}
					delete(m, k)
				}
			})
			target := testbench.UniqueName("older_" + format.String())
			b.env.DropDBOnCleanup(t, target)
			if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("older"), TargetDatabase: pgtool.MustParseIdent(target)}); err != nil {
				t.Fatalf("restore with a manifest without chunk sums: %v", err)
			}
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), b.want); diff != "" {
				t.Fatalf("restored database differs from the source:\n%s", diff)
			}
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Fatalf("WORK_DIR holds %d entries after the restore", len(left))
			}
		})
	}
}

// zstdBombTar is a directory-format archive (a tar of pg_dump -Fd's
// files) whose toc.dat is 256 MiB of zeros, zstd-compressed: a few KiB
// stored.
func zstdBombTar(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	const size = 256 << 20
	if err := tw.WriteHeader(&tar.Header{Name: "toc.dat", Mode: 0o600, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range size / len(zeros) {
		if _, err := tw.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestDecompressionBombIsRefusedWithinItsRawSize replaces a
// directory-format backup's archive with a zstd bomb and a manifest whose
// every checksum matches it (no signing key): decoding stops at the raw
// size the manifest records, and a manifest claiming more than WORK_DIR
// holds is refused before the download. WORK_DIR is left empty.
func TestDecompressionBombIsRefusedWithinItsRawSize(t *testing.T) {
	b := setup(t)
	t.Parallel()
	ctx := context.Background()
	mem := store.NewMemory("")
	work := t.TempDir()
	e, err := engine.New(engine.Options{Conn: b.conn(b.source), Stores: []store.Store{mem}, Finder: &pgtool.Finder{Forced: b.env.PGBin},
		WorkDir: work, Codec: engine.DefaultCodec, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("bomb"), Format: engine.FormatDirectory})
	if err != nil {
		t.Fatal(err)
	}
	bomb := zstdBombTar(t)
	putObject(t, mem, m.ArchiveKey, bomb)
	editManifest(t, mem, "bomb", func(mf map[string]any) { setAllSums(mf, bomb, 0) })
	target := testbench.UniqueName("bomb")
	b.env.DropDBOnCleanup(t, target)
	_, err = e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("bomb"), TargetDatabase: pgtool.MustParseIdent(target)})
	if !errors.Is(err, engine.ErrInvalidArchive) || !strings.Contains(err.Error(), "decodes to more than") {
		t.Fatalf("restore of a zstd bomb: err = %v, want ErrInvalidArchive (decodes to more than the raw size)", err)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Fatalf("WORK_DIR holds %d entries after the refused restore", len(left))
	}
	editManifest(t, mem, "bomb", func(mf map[string]any) { mf["raw_size_bytes"] = int64(1) << 50 })
	_, err = e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("bomb"), TargetDatabase: pgtool.MustParseIdent(target)})
	if !errors.Is(err, engine.ErrNoSpace) {
		t.Fatalf("restore of an archive claiming 1 PiB: err = %v, want ErrNoSpace", err)
	}
	if b.env.DatabaseExists(t, target) {
		t.Fatal("a refused restore created the target")
	}
}
