package engine_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// countingStore counts the objects read through it.
type countingStore struct {
	store.Store
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key)
}

// putFakeBackups writes n complete backups (tiny archives, real manifests)
// straight into a store, as a long-running deployment accumulates them.
func putFakeBackups(t *testing.T, s store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		name := fmt.Sprintf("fake-%05d", i)
		archive := []byte("PGDMP fake archive " + name)
		m := engine.Manifest{Name: engine.MustParseName(name), Database: "db", Format: engine.FormatCustom,
			ArchiveKey: engine.ArchiveKey(engine.MustParseName(name), engine.FormatCustom, engine.Codec{}), SizeBytes: int64(len(archive)),
			SHA256: sha(archive), StartedAt: time.Unix(int64(i), 0).UTC(), FinishedAt: time.Unix(int64(i)+1, 0).UTC()}
		// Indented, as the engine writes them.
		b, _ := json.MarshalIndent(m, "", "  ")
		if err := s.Put(ctx, m.ArchiveKey, bytes.NewReader(archive), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, engine.ManifestKey(engine.MustParseName(name)), bytes.NewReader(b), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestListingUsesTheCatalogButNeverBelievesIt(t *testing.T) {
	b := setup(t)
	t.Parallel()
	_, _, mio := b.newEngine(t)
	putFakeBackups(t, mio, 150)
	newEngine := func(s store.Store) *engine.Engine {
		e, err := engine.New(engine.Options{Conn: b.conn(b.source), Stores: []store.Store{s},
			Finder: &pgtool.Finder{Forced: b.env.PGBin}, WorkDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ctx := context.Background()
	first := &countingStore{Store: mio}
	list, err := newEngine(first).List(ctx, nil)
	if err != nil || len(list) != 150 {
		t.Fatalf("first list: %d backups, %v", len(list), err)
	}
	if n := first.gets.Load(); n < 150 {
		t.Fatalf("the first list read %d objects, want every manifest", n)
	}
	// The catalog is written in the background.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := mio.Stat(ctx, engine.CatalogKey); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no catalog written for 150 backups")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Another process: one read, the catalog.
	second := &countingStore{Store: mio}
	if list, err = newEngine(second).List(ctx, nil); err != nil || len(list) != 150 {
		t.Fatalf("second list: %d backups, %v", len(list), err)
	}
	if n := second.gets.Load(); n != 1 {
		t.Fatalf("a fresh engine read %d objects, want only the catalog", n)
	}
	// A manifest changed since the catalog was written, and a catalog
	// that lies: neither is believed.
	editManifest(t, mio, "fake-00007", func(m map[string]any) { m["database"] = "changed" })
	rc, err := mio.Get(ctx, engine.CatalogKey)
	if err != nil {
		t.Fatal(err)
	}
	var cat struct {
		Version int              `json:"version"`
		Entries []map[string]any `json:"entries"`
	}
	err = json.NewDecoder(rc).Decode(&cat)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	forged := false
	for _, ent := range cat.Entries {
		if ent["key"] == engine.ManifestKey(engine.MustParseName("fake-00011")) {
			raw, _ := base64.StdEncoding.DecodeString(ent["manifest"].(string))
			ent["manifest"] = []byte(strings.Replace(string(raw), `"database": "db"`, `"database": "xx"`, 1))
			forged = string(ent["manifest"].([]byte)) != string(raw)
		}
	}
	if !forged {
		t.Fatal("could not forge the catalog; the test would prove nothing")
	}
	lie, _ := json.Marshal(cat)
	if err := mio.Put(ctx, engine.CatalogKey, bytes.NewReader(lie), nil); err != nil {
		t.Fatal(err)
	}
	third := &countingStore{Store: mio}
	list, err = newEngine(third).List(ctx, nil)
	if err != nil || len(list) != 150 {
		t.Fatalf("third list: %d backups, %v", len(list), err)
	}
	byName := map[string]string{}
	for _, e := range list {
		byName[e.Name.String()] = e.Database
	}
	if byName["fake-00007"] != "changed" || byName["fake-00011"] != "db" {
		t.Fatalf("listed databases %q and %q, want the manifests' own (changed, db)", byName["fake-00007"], byName["fake-00011"])
	}
	if n := third.gets.Load(); n < 3 || n > 10 {
		t.Fatalf("with two stale entries the list read %d objects, want the catalog and those two", n)
	}
}
