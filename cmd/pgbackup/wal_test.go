package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/cmd/internal/cli"
	"github.com/autograph/pgbackup/cmd/internal/remote"
	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/jobs/wal"
)

// TestWALVerify runs `pgbackup wal verify --target a` on an archive in
// the local store, written with the configuration's codec, encryption and
// signing key: a whole chain passes, a deleted segment fails with its
// range.
func TestWALVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ids := filepath.Join(dir, "ids")
	if err := os.WriteFile(ids, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	setup, err := wire.LoadFrom("", []string{"BACKUP_DIR=" + filepath.Join(dir, "store"), "BACKUP_SIGNING_KEY=" + strings.Repeat("k", 40),
		"ENCRYPTION_RECIPIENTS=" + id.Recipient().String(), "ENCRYPTION_IDENTITY_FILE=" + ids,
		`BACKUP_TARGETS=[{"name":"a","schedule":"@every 1h","keep_last":3}]`})
	if err != nil {
		t.Fatal(err)
	}
	stores, err := wire.Stores(ctx, setup)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.NewEntry(logrus.New())
	a, err := wal.New(wal.Options{Target: "a", Stores: stores, Codec: setup.Codec, Encryption: setup.Encryption, Signer: setup.Signer, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, wal.DefaultSegmentSize)
	for segno := range uint64(3) {
		if _, err := rand.Read(data[:4096]); err != nil {
			t.Fatal(err)
		}
		if err := a.PutSegment(ctx, 1, segno+1, data); err != nil {
			t.Fatal(err)
		}
	}
	verify := func() (walReport, error) {
		f, err := cli.Parse("wal", []string{"verify", "--target", "a"}, cli.Local, func(string) string { return "" }, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = runWAL(ctx, setup, f, log, remote.IO{Stdout: &out, Stderr: &bytes.Buffer{}})
		var r walReport
		if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
			t.Fatalf("output %q: %v", out.String(), jerr)
		}
		return r, err
	}
	if r, err := verify(); err != nil || !r.OK || len(r.Chains) != 1 || r.Chains[0].Segments != 3 {
		t.Fatalf("whole archive: %+v, err %v; want ok with 3 segments", r, err)
	}
	if err := stores[0].Delete(ctx, "wal/a/00000001/000000010000000000000002.zst.age"); err != nil {
		t.Fatal(err)
	}
	r, err := verify()
	if err == nil || r.OK || len(r.Gaps) != 1 || !strings.Contains(r.Gaps[0], "timeline 1 0/2000000-0/3000000: not archived") {
		t.Fatalf("deleted segment: %+v, err %v; want a failure naming 0/2000000-0/3000000", r.Gaps, err)
	}
}
