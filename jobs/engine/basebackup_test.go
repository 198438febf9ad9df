package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// pitrEngine is an engine whose server is a private PITR PostgreSQL
// (wal_level=replica, a REPLICATION role), storing into a local
// directory and a fresh bucket of the bench's MinIO, with zstd asked for
// through pg_dump's compression (which base backups replace by zstd) and
// age encryption.
type pitrEngine struct {
	e     *engine.Engine
	su    *pgx.Conn // superuser, over the socket
	conn  pgtool.Conn
	local *store.Local
	mio   *store.MinIO
}

func newPITREngine(t *testing.T) *pitrEngine {
	t.Helper()
	env := testbench.Require(t)
	pg := env.StartPITRPostgres(t)
	su, err := pgx.Connect(t.Context(), fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable", pg.PGSocket, pg.PGPort))
	if err != nil {
		t.Fatalf("connect as postgres: %v", err)
	}
	t.Cleanup(func() { su.Close(context.Background()) })
	port, _ := strconv.Atoi(pg.PGPort)
	conn := pgtool.Conn{Host: pg.PGHost, Port: port, User: pg.PGUser, Password: pg.PGPassword, SSLMode: "disable", Database: pg.PGDatabase}
	local, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mio, err := store.NewMinIO(t.Context(), store.MinIOConfig{Endpoint: env.MinIOEndpoint, AccessKey: env.MinIOUser,
		SecretKey: env.MinIOPassword, Bucket: strings.ReplaceAll(testbench.UniqueName("base"), "_", "-"),
		PartSize: store.MinPartSize, UploadThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	id := newIdentity(t)
	e, err := engine.New(engine.Options{Conn: conn, Stores: []store.Store{local, mio}, Finder: &pgtool.Finder{Forced: pg.PGBin},
		WorkDir: t.TempDir(), Codec: engine.Codec{PgDump: true}, Encryption: encryption(t, []*age.X25519Identity{id}, id)})
	if err != nil {
		t.Fatal(err)
	}
	return &pitrEngine{e: e, su: su, conn: conn, local: local, mio: mio}
}

func (p *pitrEngine) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := p.su.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (p *pitrEngine) int64(t *testing.T, sql string) int64 {
	t.Helper()
	var n int64
	if err := p.su.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// keysOf lists what the stores hold for a backup name.
func (p *pitrEngine) keysOf(t *testing.T, name string) []string {
	t.Helper()
	var keys []string
	for _, s := range []store.Store{p.local, p.mio} {
		objs, err := s.List(t.Context(), engine.Prefix+name)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			keys = append(keys, s.Name()+":"+o.Key)
		}
	}
	return keys
}

func lsnOf(t *testing.T, s string) uint64 {
	t.Helper()
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("LSN %q does not parse", s)
	}
	return h<<32 | l
}

// TestBaseBackup takes a base backup of a server with data and checks
// what it stored: the manifest's WAL positions and sizes, a tar that
// decodes through the engine's read path with PG_VERSION, backup_label
// and the same backup_manifest as the companion, a verify that passes,
// restore and drill refused, and a delete that leaves nothing. Then a
// failure half way and a server with a tablespace leave nothing either.
func TestBaseBackup(t *testing.T) {
	t.Parallel()
	p := newPITREngine(t)
	ctx := t.Context()
	p.exec(t, "CREATE TABLE filler AS SELECT i, md5(i::text) AS v FROM generate_series(1, 100000) i")
	tableBytes := p.int64(t, "SELECT pg_total_relation_size('filler')")
	dbBytes := p.int64(t, "SELECT sum(pg_database_size(oid))::bigint FROM pg_database")

	name := engine.MustParseName("pitr_base_20260101_000000")
	m, err := p.e.BaseBackup(ctx, engine.BaseBackupRequest{Name: name, WALArchive: "pitr", Target: "pitr", TaskID: "task-1"})
	if err != nil {
		t.Fatalf("BaseBackup: %v", err)
	}
	list, err := p.e.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != name || list[0].Content != engine.ContentBase || len(list[0].Locations) != 2 || list[0].Base == nil {
		t.Fatalf("List = %+v; want %s, kind %s, in both stores, with base info", list, name, engine.ContentBase)
	}
	base := list[0].Base
	if base.Timeline != 1 || base.WALArchive != "pitr" || lsnOf(t, base.StartLSN) > lsnOf(t, base.StopLSN) || lsnOf(t, base.StartLSN) == 0 {
		t.Errorf("base = %+v; want timeline 1, wal archive pitr, 0 < start <= stop", base)
	}
	if base.UnpackedBytes <= tableBytes || base.UnpackedBytes < dbBytes*9/10 || base.UnpackedBytes > 2*dbBytes {
		t.Errorf("unpacked %d bytes; want more than the table's %d and within 0.9x to 2x of the databases' %d", base.UnpackedBytes, tableBytes, dbBytes)
	}
	if m.Codec != engine.DefaultCodec.String() || !m.Encrypted || base.BackupManifest == nil || base.PgBasebackupVersion == "" {
		t.Errorf("manifest codec %q encrypted %v backup_manifest %+v version %q; want zstd (pg_dump's compression does not apply), encrypted, a companion, a version",
			m.Codec, m.Encrypted, base.BackupManifest, base.PgBasebackupVersion)
	}

	members, inTar := readBaseTar(t, p.e, name)
	for _, want := range []string{"PG_VERSION", "backup_label", "global/pg_control"} {
		if _, ok := members[want]; !ok {
			t.Errorf("the stored tar has no %s (%d members)", want, len(members))
		}
	}
	if !strings.Contains(string(members["backup_label"]), "START WAL LOCATION: "+base.StartLSN+" ") {
		t.Errorf("backup_label %q does not start at %s", members["backup_label"], base.StartLSN)
	}
	r, err := p.e.OpenBase(ctx, name, store.MinIOName, false)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.BackupManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	companion, err := readAll(rc)
	if err != nil {
		t.Fatalf("read the backup_manifest companion: %v", err)
	}
	if !bytes.Equal(companion, inTar) || !bytes.Contains(companion, []byte(`"End-LSN": "`+base.StopLSN+`"`)) {
		t.Errorf("companion (%d bytes) differs from the tar's backup_manifest (%d bytes) or lacks End-LSN %s", len(companion), len(inTar), base.StopLSN)
	}
	if _, err := p.e.Verify(ctx, name, store.LocalName, false); err != nil {
		t.Errorf("Verify: %v", err)
	}

	_, err = p.e.Restore(ctx, engine.RestoreRequest{Name: name, TargetDatabase: pgtool.MustParseIdent("restored")})
	if !errors.Is(err, engine.ErrInvalid) || !strings.Contains(err.Error(), "is a base backup: it is restored by point-in-time recovery") {
		t.Errorf("Restore of a base backup: %v; want ErrInvalid, restored by point-in-time recovery", err)
	}
	_, err = p.e.Drill(ctx, name, pgtool.MustParseIdent("drill_scratch"), nil, nil)
	if !errors.Is(err, engine.ErrInvalid) || !strings.Contains(err.Error(), "is a base backup") {
		t.Errorf("Drill of a base backup: %v; want ErrInvalid", err)
	}
	if again, err := p.e.BaseBackup(ctx, engine.BaseBackupRequest{Name: name, WALArchive: "pitr", TaskID: "task-1"}); err != nil || again.SHA256 != m.SHA256 {
		t.Errorf("a retried task's BaseBackup = %v, %v; want the finished one", again, err)
	}

	if _, err := p.e.Delete(ctx, name, nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if left := p.keysOf(t, name.String()); len(left) != 0 {
		t.Errorf("after Delete the stores still hold %v", left)
	}

	t.Run("cancelled half way", func(t *testing.T) {
		// Cancelled once the archive is stored, while its backup_manifest
		// is: the archive must go again.
		name := "pitr_base_cancelled"
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		_, err := p.e.BaseBackup(cctx, engine.BaseBackupRequest{Name: engine.MustParseName(name), Progress: func(pr engine.Progress) {
			if pr.Phase == "uploading backup_manifest" {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("BaseBackup cancelled while storing its backup_manifest: %v; want context.Canceled", err)
		}
		if left := p.keysOf(t, name); len(left) != 0 {
			t.Errorf("a failed base backup left %v", left)
		}
	})

	t.Run("tablespace refused", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "pgbackup-tblspc-*")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Skipf("chown postgres %s: %v: %s", dir, err, out)
		}
		p.exec(t, "CREATE TABLESPACE extra LOCATION '"+dir+"'")
		name := "pitr_base_tblspc"
		_, err = p.e.BaseBackup(ctx, engine.BaseBackupRequest{Name: engine.MustParseName(name)})
		if !errors.Is(err, engine.ErrInvalid) || !strings.Contains(err.Error(), "extra") {
			t.Errorf("BaseBackup of a server with a tablespace: %v; want ErrInvalid naming it", err)
		}
		if left := p.keysOf(t, name); len(left) != 0 {
			t.Errorf("a refused base backup left %v", left)
		}
		p.exec(t, "DROP TABLESPACE extra")
	})
}

// readBaseTar reads a base backup through OpenBase from the local store
// and returns its small members' contents (PG_VERSION, backup_label, ...;
// files over 1 MiB are only listed) and its backup_manifest.
func readBaseTar(t *testing.T, e *engine.Engine, name engine.Name) (map[string][]byte, []byte) {
	t.Helper()
	r, err := e.OpenBase(t.Context(), name, store.LocalName, false)
	if err != nil {
		t.Fatalf("OpenBase: %v", err)
	}
	rc, err := r.Tar(t.Context(), nil)
	if err != nil {
		t.Fatalf("Tar: %v", err)
	}
	defer rc.Close()
	members := map[string][]byte{}
	var manifest []byte
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read the stored tar: %v", err)
		}
		var body []byte
		if hdr.Size <= 1<<20 || hdr.Name == "backup_manifest" {
			if body, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
		members[path.Clean(hdr.Name)] = body
		if hdr.Name == "backup_manifest" {
			manifest = body
		}
	}
	// The end of the archive is only known once the stream says so: the
	// rest of the object was checked then.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatalf("the stored tar's end: %v", err)
	}
	return members, manifest
}
