package engine_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func encryption(t *testing.T, recipients []*age.X25519Identity, identities ...*age.X25519Identity) *engine.Encryption {
	t.Helper()
	var recs []string
	for _, r := range recipients {
		recs = append(recs, r.Recipient().String())
	}
	var ids io.Reader // none: a worker that only backs up
	if len(identities) > 0 {
		var sb strings.Builder
		for _, id := range identities {
			sb.WriteString(id.String() + "\n")
		}
		ids = strings.NewReader(sb.String())
	}
	enc, err := engine.NewEncryption(recs, ids)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestEncryptedArchivesRoundTripAndHoldNoData(t *testing.T) {
	b := setup(t)
	backupKey, oldKey := newIdentity(t), newIdentity(t)
	for _, format := range engine.Formats {
		t.Run(format.String(), func(t *testing.T) {
			t.Parallel()
			_, _, mio := b.newEngineWith(t, engine.DefaultCodec) // a fresh bucket of the real MinIO
			newEngine := func(enc *engine.Encryption) *engine.Engine {
				e, err := engine.New(engine.Options{Conn: b.conn(b.source), Stores: []store.Store{mio},
					Finder: &pgtool.Finder{Forced: b.env.PGBin}, WorkDir: t.TempDir(), Codec: engine.DefaultCodec, Encryption: enc})
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			// The backing-up worker has only the public key.
			m, err := newEngine(encryption(t, []*age.X25519Identity{backupKey})).Backup(context.Background(),
				engine.BackupRequest{Name: engine.MustParseName("secret"), Format: format})
			if err != nil {
				t.Fatal(err)
			}
			if !m.Encrypted || len(m.Recipients) != 1 || !strings.HasSuffix(m.ArchiveKey, ".zst.age") {
				t.Fatalf("manifest encrypted=%v recipients=%v key=%s", m.Encrypted, m.Recipients, m.ArchiveKey)
			}
			rc, err := mio.Get(context.Background(), m.ArchiveKey)
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := readAll(rc)
			for _, plain := range [][]byte{[]byte("PGDMP"), []byte("user_17 "), []byte("CREATE TABLE")} {
				if bytes.Contains(stored, plain) {
					t.Fatalf("the stored archive contains %q in clear", plain)
				}
			}
			// A worker with the identity (among older ones) restores it.
			target := testbench.UniqueName("enc_" + format.String())
			b.env.DropDBOnCleanup(t, target)
			reader := newEngine(encryption(t, nil, oldKey, backupKey))
			if _, err := reader.Restore(context.Background(), engine.RestoreRequest{Name: engine.MustParseName("secret"), TargetDatabase: pgtool.MustParseIdent(target)}); err != nil {
				t.Fatalf("restore with the identity: %v", err)
			}
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), b.want); diff != "" {
				t.Fatalf("decrypted restore differs:\n%s", diff)
			}
			// Without the identity, or with another one: refused, target untouched.
			for name, enc := range map[string]*engine.Encryption{"no identity": nil, "wrong identity": encryption(t, nil, oldKey)} {
				other := testbench.UniqueName("enc_refused")
				b.env.DropDBOnCleanup(t, other)
				if _, err := newEngine(enc).Restore(context.Background(), engine.RestoreRequest{Name: engine.MustParseName("secret"), TargetDatabase: pgtool.MustParseIdent(other)}); !errors.Is(err, engine.ErrNoIdentity) {
					t.Fatalf("%s: err = %v, want ErrNoIdentity", name, err)
				}
				if b.env.DatabaseExists(t, other) {
					t.Fatalf("%s: the refused restore created its target", name)
				}
			}
			if _, err := reader.Verify(context.Background(), engine.MustParseName("secret"), "", false); err != nil {
				t.Fatalf("verify with the identity: %v", err)
			}
		})
	}
}
