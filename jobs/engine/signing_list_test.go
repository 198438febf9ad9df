package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/store"
)

// putListed writes a tiny archive and its manifest, signed by signer (nil:
// unsigned), straight into s; edit, when set, changes the manifest's JSON
// after signing, as someone with write access to the bucket would.
func putListed(t *testing.T, s store.Store, name string, signer *Signer, edit func(map[string]any)) {
	t.Helper()
	ctx := context.Background()
	n := MustParseName(name)
	archive := []byte("PGDMP archive of " + name)
	sum := sha256.Sum256(archive)
	m := &Manifest{Name: n, Database: "db", Format: FormatCustom, ArchiveKey: ArchiveKey(n, FormatCustom, Codec{}),
		SizeBytes: int64(len(archive)), SHA256: hex.EncodeToString(sum[:]), StartedAt: time.Unix(100, 0).UTC(), FinishedAt: time.Unix(200, 0).UTC()}
	if signer != nil {
		if err := signer.sign(m); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatal(err)
		}
		edit(obj)
		b, _ = json.Marshal(obj)
	}
	if err := s.Put(ctx, m.ArchiveKey, bytes.NewReader(archive), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, ManifestKey(n), bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
}

// TestListingTrustsOnlyManifestsThatVerify: with a key, "verified" means
// the HMAC verified with a configured key, not that a signature field
// exists; a forged, altered or foreign-key manifest is listed as
// unverified, and a manifest changed after a listing is checked again.
func TestListingTrustsOnlyManifestsThatVerify(t *testing.T) {
	t.Parallel()
	key := []byte(strings.Repeat("k", 32))
	signer := NewSigner(key)
	mem := store.NewMemory("mem")
	putListed(t, mem, "good", signer, nil)
	putListed(t, mem, "unsigned", nil, nil)
	putListed(t, mem, "forged", nil, func(m map[string]any) { m["signature"] = strings.Repeat("ab", 32) })
	putListed(t, mem, "altered", signer, func(m map[string]any) { m["database"] = "other" })
	putListed(t, mem, "foreign", NewSigner([]byte(strings.Repeat("x", 32))), nil)
	e, err := New(Options{Stores: []store.Store{mem}, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	list := func() map[string]Entry {
		t.Helper()
		entries, err := e.List(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Entry{}
		for _, ent := range entries {
			out[ent.Name.String()] = ent
		}
		return out
	}
	got := list()
	for _, tt := range []struct {
		name    string
		trusted bool
	}{{"good", true}, {"unsigned", false}, {"forged", false}, {"altered", false}, {"foreign", false}} {
		ent, ok := got[tt.name]
		if !ok {
			t.Fatalf("%s: not listed", tt.name)
		}
		if ent.Trusted() != tt.trusted || ent.Verified != tt.trusted || (ent.Unverified == "") != tt.trusted {
			t.Errorf("%s: trusted=%v verified=%v unverified=%q, want trusted=%v", tt.name, ent.Trusted(), ent.Verified, ent.Unverified, tt.trusted)
		}
	}
	// The verdict is cached by ETag: a manifest replaced after the first
	// listing is checked again, not believed from the cache.
	putListed(t, mem, "good", signer, func(m map[string]any) { m["database"] = "swapped" })
	if ent := list()["good"]; ent.Trusted() || ent.Verified {
		t.Errorf("a manifest altered after a listing is still trusted: verified=%v unverified=%q", ent.Verified, ent.Unverified)
	}
	putListed(t, mem, "good", signer, nil)
	if ent := list()["good"]; !ent.Verified {
		t.Errorf("a manifest signed again is not verified: %q", ent.Unverified)
	}
}

// TestListingWithoutKeyTrustsAndVerifiesNothing: without a key nothing is
// checked, so nothing is called verified (a signature field proves
// nothing) and nothing is set aside.
func TestListingWithoutKeyTrustsAndVerifiesNothing(t *testing.T) {
	t.Parallel()
	mem := store.NewMemory("mem")
	putListed(t, mem, "signed", NewSigner([]byte(strings.Repeat("k", 32))), nil)
	e, err := New(Options{Stores: []store.Store{mem}})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := e.List(context.Background(), nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("list: %d entries, %v", len(entries), err)
	}
	if ent := entries[0]; ent.Verified || !ent.Trusted() {
		t.Errorf("without a key: verified=%v unverified=%q, want neither", ent.Verified, ent.Unverified)
	}
}

// TestRefuseUnsignedRefusesAllowUnsigned: with the setting on, a task
// that asks for allow_unsigned is refused by the worker's engine before
// the archive is read, even if the API was bypassed; off, the request
// still lets a person use an unsigned manifest.
func TestRefuseUnsignedRefusesAllowUnsigned(t *testing.T) {
	t.Parallel()
	key := []byte(strings.Repeat("k", 32))
	for _, tt := range []struct {
		name        string
		refuse      bool
		wantRefused bool
	}{{"refusing", true, true}, {"allowing", false, false}} {
		mem := store.NewMemory("mem")
		putListed(t, mem, "unsigned", nil, nil)
		e, err := New(Options{Stores: []store.Store{mem}, Signer: NewSigner(key).RefuseUnsigned(tt.refuse)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Verify(context.Background(), MustParseName("unsigned"), "", true)
		if got := errors.Is(err, ErrUnsignedRefused); got != tt.wantRefused {
			t.Errorf("%s: verify with allow_unsigned: %v, want refused=%v", tt.name, err, tt.wantRefused)
		}
		if tt.wantRefused && !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v does not wrap ErrSignature (a permanent failure)", tt.name, err)
		}
	}
	if NewSigner(nil).RefuseUnsigned(true).RefusesUnsigned() {
		t.Error("a signer without a key refuses unsigned manifests: it can check none")
	}
}

// TestFindPrefersTheCopyThatVerifies: with a key, a manifest forged in the
// first store does not stand in for the good copy in the second, and the
// store it came from comes first (restores read the archive there).
func TestFindPrefersTheCopyThatVerifies(t *testing.T) {
	t.Parallel()
	signer := NewSigner([]byte(strings.Repeat("k", 32)))
	first, second := store.NewMemory("first"), store.NewMemory("second")
	putListed(t, first, "b", signer, func(m map[string]any) { m["database"] = "elsewhere" })
	putListed(t, second, "b", signer, nil)
	e, err := New(Options{Stores: []store.Store{first, second}, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	m, where, err := e.Find(context.Background(), MustParseName("b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Database != "db" || len(where) != 2 || where[0] != "second" {
		t.Fatalf("Find chose database %q from %v, want the verified copy (db) from second first", m.Database, where)
	}
	// Without a verified copy anywhere, the first one is returned (and a
	// restore refuses it by its signature).
	putListed(t, second, "b", nil, func(m map[string]any) { m["signature"] = strings.Repeat("ab", 32) })
	if m, where, err = e.Find(context.Background(), MustParseName("b"), nil); err != nil || where[0] != "first" || m.Database != "elsewhere" {
		t.Fatalf("no verified copy: %v from %v (%v), want the first store's", m, where, err)
	}
}
