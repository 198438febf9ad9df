package engine

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func newKeyPair(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestEd25519Signatures: workers sign with the private key; a program with
// only the public key verifies and cannot sign; HMAC manifests stay
// verifiable while a deployment moves over.
func TestEd25519Signatures(t *testing.T) {
	t.Parallel()
	pub, priv := newKeyPair(t)
	otherPub, _ := newKeyPair(t)
	hmacKey := []byte("hmac-key-0123456789abcdef0123456789")
	manifest := func(name string) *Manifest {
		n := MustParseName(name)
		return &Manifest{Name: n, Database: "db", Format: FormatCustom, ArchiveKey: ArchiveKey(n, FormatCustom, Codec{}),
			SizeBytes: 42, SHA256: strings.Repeat("a", 64), StartedAt: time.Now(), FinishedAt: time.Now()}
	}
	encode := func(s *Signer, m *Manifest) []byte {
		t.Helper()
		if err := s.sign(m); err != nil {
			t.Fatal(err)
		}
		raw, err := m.encode()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	worker := NewSigner(nil).UseEd25519(priv)
	m := manifest("n")
	raw := encode(worker, m)
	if !strings.HasPrefix(m.Signature, ed25519Prefix) {
		t.Fatalf("signature %q, want an ed25519 one", m.Signature)
	}
	verifier := NewSigner(nil).UseEd25519(nil, pub)
	if !verifier.Enabled() || verifier.CanSign() {
		t.Fatalf("public key only: enabled %v, can sign %v; want true, false", verifier.Enabled(), verifier.CanSign())
	}
	if err := verifier.check(m.Name, raw); err != nil {
		t.Fatalf("the public key does not verify its private key's signature: %v", err)
	}
	if verifier.Fingerprint() != worker.Fingerprint() || !strings.HasPrefix(worker.Fingerprint(), ed25519Prefix) {
		t.Fatalf("fingerprints %q and %q: want the same ed25519 one for both halves of the pair", verifier.Fingerprint(), worker.Fingerprint())
	}
	if err := verifier.sign(manifest("x")); !errors.Is(err, ErrSignature) {
		t.Fatalf("signing with only a public key: err = %v, want ErrSignature", err)
	}
	for name, s := range map[string]*Signer{
		"another public key": NewSigner(nil).UseEd25519(nil, otherPub),
		"an HMAC key only":   NewSigner(hmacKey),
	} {
		if err := s.check(m.Name, raw); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: err = %v, want ErrSignature", name, err)
		}
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	obj["database"] = "other"
	tampered, _ := json.Marshal(obj)
	if err := verifier.check(m.Name, tampered); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered: err = %v, want ErrSignature", err)
	}
	obj["signature"] = ed25519Prefix + "not base64!"
	garbled, _ := json.Marshal(obj)
	if err := verifier.check(m.Name, garbled); !errors.Is(err, ErrSignature) {
		t.Fatalf("garbled signature: err = %v, want ErrSignature", err)
	}

	// Moving over: the old HMAC key stays accepted, new manifests are
	// signed with ed25519, and the HMAC key becomes an old fingerprint.
	old := encode(NewSigner(hmacKey), manifest("old"))
	both := NewSigner(hmacKey).UseEd25519(priv)
	if err := both.check(MustParseName("old"), old); err != nil {
		t.Fatalf("an HMAC manifest during the move: %v", err)
	}
	fresh := manifest("fresh")
	encode(both, fresh)
	if !strings.HasPrefix(fresh.Signature, ed25519Prefix) {
		t.Fatalf("with both keys, signature %q, want ed25519", fresh.Signature)
	}
	if both.Fingerprint() != worker.Fingerprint() || len(both.OldFingerprints()) != 1 || both.OldFingerprints()[0] != KeyFingerprint(hmacKey) {
		t.Fatalf("fingerprint %q, old %v: want the ed25519 key current and the HMAC key old", both.Fingerprint(), both.OldFingerprints())
	}
}
