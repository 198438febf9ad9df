package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/configs"
)

// writeKeyPair writes an ed25519 pair as openssl writes it: the private
// key as PKCS #8, the public key as PKIX, both PEM.
func writeKeyPair(t *testing.T, dir, name string) (privFile, pubFile string) {
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
	privFile, pubFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub")
	for file, block := range map[string]*pem.Block{privFile: {Type: "PRIVATE KEY", Bytes: p8}, pubFile: {Type: "PUBLIC KEY", Bytes: pk}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return privFile, pubFile
}

// TestEd25519Keys: the pair's halves load where each is needed; a public
// key alone verifies (and refuses unsigned by default) without signing; a
// file of the wrong kind names its setting.
func TestEd25519Keys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	priv, pub := writeKeyPair(t, dir, "current")
	_, oldPub := writeKeyPair(t, dir, "old")
	both := filepath.Join(dir, "both.pub")
	a, _ := os.ReadFile(pub)
	b, _ := os.ReadFile(oldPub)
	if err := os.WriteFile(both, append(a, b...), 0o600); err != nil {
		t.Fatal(err)
	}
	worker, err := LoadFrom("", []string{"BACKUP_SIGNING_PRIVATE_KEY_FILE=" + priv})
	if err != nil {
		t.Fatal(err)
	}
	api, err := LoadFrom("", []string{"BACKUP_SIGNING_PUBLIC_KEYS_FILE=" + both})
	if err != nil {
		t.Fatal(err)
	}
	if !worker.Signer.CanSign() || api.Signer.CanSign() || !api.Signer.Enabled() || !api.Signer.RefusesUnsigned() {
		t.Fatalf("worker can sign %v; api can sign %v, enabled %v, refuses unsigned %v; want true, false, true, true",
			worker.Signer.CanSign(), api.Signer.CanSign(), api.Signer.Enabled(), api.Signer.RefusesUnsigned())
	}
	if worker.Signer.Fingerprint() != api.Signer.Fingerprint() || len(api.Signer.OldFingerprints()) != 1 {
		t.Fatalf("fingerprints %q and %q (old %v): want the same current key and one old one",
			worker.Signer.Fingerprint(), api.Signer.Fingerprint(), api.Signer.OldFingerprints())
	}

	reversed := filepath.Join(dir, "reversed.pub")
	if err := os.WriteFile(reversed, append(b, a...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, setting string
		env           []string
	}{
		{"public key as private", "BACKUP_SIGNING_PRIVATE_KEY_FILE", []string{"BACKUP_SIGNING_PRIVATE_KEY_FILE=" + pub}},
		{"private key as public", "BACKUP_SIGNING_PUBLIC_KEYS_FILE", []string{"BACKUP_SIGNING_PUBLIC_KEYS_FILE=" + priv}},
		{"missing", "BACKUP_SIGNING_PUBLIC_KEYS_FILE", []string{"BACKUP_SIGNING_PUBLIC_KEYS_FILE=" + filepath.Join(dir, "none")}},
		{"current key not first", "BACKUP_SIGNING_PUBLIC_KEYS_FILE", []string{"BACKUP_SIGNING_PRIVATE_KEY_FILE=" + priv, "BACKUP_SIGNING_PUBLIC_KEYS_FILE=" + reversed}},
	} {
		_, err := LoadFrom("", tt.env)
		if err == nil || !slices.Contains(configs.Settings(err), tt.setting) || !strings.Contains(err.Error(), tt.setting) {
			t.Errorf("%s: err = %v, want one naming %s", tt.name, err, tt.setting)
		}
	}
}
