package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
)

// TestEd25519WorkersSignAPIVerifies runs the split the ed25519 keys exist
// for: the worker holds the private key, the API only the public one, so
// the API host cannot forge a manifest, yet lists the worker's as signed
// and a tampered one as not; a worker given only the public key refuses
// to start rather than write manifests nobody can verify.
func TestEd25519WorkersSignAPIVerifies(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	priv, pub := writeEd25519Pair(t, c.dir)
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t AS SELECT 1 AS x`)
	api := c.startAPI("BACKUP_SIGNING_PUBLIC_KEYS_FILE=" + pub)
	c.start("worker", "worker", "BACKUP_SIGNING_PRIVATE_KEY_FILE="+priv)
	for _, name := range []string{"good", "forged"} {
		c.waitTask(c.create(client.CreateBackupRequest{BackupName: name, Stores: []string{"minio"}}).TaskID, 2*time.Minute)
	}
	if out, _ := api.Output(); strings.Contains(out, "is not set: manifests are neither signed nor checked") {
		t.Error("the api with a public key warns that manifests are not checked")
	}
	if list := c.listBackups(); !list["good"].Signed || !list["forged"].Signed {
		t.Fatalf("listed %+v, want both signed (verified by the public key)", list)
	}
	tamperManifest(t, c, "forged", func(m map[string]any) { m["database"] = "postgres" })
	if list := c.listBackups(); !list["good"].Signed || list["forged"].Signed {
		t.Errorf("after tampering: good signed=%v, forged signed=%v; want true, false", list["good"].Signed, list["forged"].Signed)
	}

	verifyOnly := c.start("worker-public-only", "worker", "BACKUP_SIGNING_PUBLIC_KEYS_FILE="+pub)
	select {
	case <-verifyOnly.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("a worker with only the public key is still running after 30 s, want it to refuse to start")
	}
	if out, _ := verifyOnly.Output(); !strings.Contains(out, "BACKUP_SIGNING_PRIVATE_KEY_FILE") {
		t.Errorf("the public-only worker exited without naming BACKUP_SIGNING_PRIVATE_KEY_FILE:\n%s", tail(out, 2000))
	}
}

// writeEd25519Pair writes a key pair as openssl genpkey / pkey -pubout do.
func writeEd25519Pair(t *testing.T, dir string) (privFile, pubFile string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	privFile, pubFile = filepath.Join(dir, "signing.pem"), filepath.Join(dir, "signing.pub")
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return privFile, pubFile
}
