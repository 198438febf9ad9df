package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/store"
)

// TestForgedCatalogIsNotTrusted: the catalog is a cache anyone who can
// write the store may have written. On the real local store (whose ETags
// are no content hash) and the real MinIO, a forged entry carrying the
// listed object's ETag and size changes nothing: not an archive key, not
// a signature's verdict, not a target; a backup without a manifest is not
// listed; and retention's delete goes by the manifest itself, verified.
func TestForgedCatalogIsNotTrusted(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	local, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mio, err := store.NewMinIO(context.Background(), store.MinIOConfig{Endpoint: env.MinIOEndpoint, AccessKey: env.MinIOUser,
		SecretKey: env.MinIOPassword, Bucket: strings.ReplaceAll(testbench.UniqueName("forged"), "_", "-"), PartSize: store.MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.Store{local, mio} {
		t.Run(s.Name(), func(t *testing.T) {
			t.Parallel()
			forgedCatalog(t, s)
		})
	}
}

func forgedCatalog(t *testing.T, s store.Store) {
	ctx := context.Background()
	signer := NewSigner([]byte(strings.Repeat("k", 32)))
	for _, n := range []string{"one", "two", "six", "manual"} {
		putListed(t, s, n, signer, nil)
	}
	putListed(t, s, "unsigned", nil, func(m map[string]any) { m["target"], m["scheduled"] = "t1", true })
	objs, err := s.List(ctx, Prefix)
	if err != nil {
		t.Fatal(err)
	}
	etags, sizes := map[string]string{}, map[string]int64{}
	for _, o := range objs {
		etags[o.Key], sizes[o.Key] = o.ETag, o.Size
	}
	// Each forged manifest has its object's size, so that only the content
	// could give it away.
	forge := func(name string, edit func(m map[string]any)) catalogEntry {
		key := ManifestKey(MustParseName(name))
		rc, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		err = json.NewDecoder(rc).Decode(&m)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		// Padding goes in a field of its own: a catalog's JSON keeps no
		// white space. `,"pad":""` is 9 bytes.
		if diff := int(sizes[key]) - len(b); diff != 0 {
			if diff < 9 {
				t.Fatalf("forged %s is %d bytes off the real one; change the edit", name, diff)
			}
			m["pad"] = strings.Repeat("p", diff-9)
			b, _ = json.Marshal(m)
		}
		if int64(len(b)) != sizes[key] {
			t.Fatalf("forged %s has %d bytes, the real one %d", name, len(b), sizes[key])
		}
		return catalogEntry{Key: key, ETag: etags[key], Manifest: b}
	}
	six := ArchiveKey(MustParseName("six"), FormatCustom, Codec{})
	cf := catalogFile{Version: catalogVersion, Written: time.Now().UTC(), Entries: []catalogEntry{
		// another backup's archive (of the same size; decodeManifest
		// refuses an archive key that is not the name's, catalog or not)
		forge("one", func(m map[string]any) { m["archive_key"] = six }),
		// another signature, to make a good backup look forged
		forge("two", func(m map[string]any) { m["signature"] = strings.Repeat("0", 64) }),
		// a manual backup made to look like an old scheduled one
		forge("manual", func(m map[string]any) { m["target"], m["scheduled"] = "t1", true; delete(m, "sha256") }),
		// a backup that has no manifest at all
		{Key: ManifestKey(MustParseName("ghost")), ETag: etags[ManifestKey(MustParseName("one"))], Manifest: forge("one", func(m map[string]any) { m["name"], m["database"] = "ghost", "" }).Manifest},
	}}
	b, _ := json.Marshal(cf)
	if err := s.Put(ctx, CatalogKey, bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}

	e, err := New(Options{Stores: []store.Store{s}, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := e.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Entry{}
	for _, ent := range entries {
		got[ent.Name.String()] = ent
	}
	if _, ok := got["ghost"]; ok {
		t.Error("a backup only the catalog names is listed")
	}
	if ent := got["one"]; ent.ArchiveKey != ArchiveKey(MustParseName("one"), FormatCustom, Codec{}) || ent.Database != "db" {
		t.Errorf("one listed with archive %s, database %q: the catalog's, not its manifest's", ent.ArchiveKey, ent.Database)
	}
	for _, n := range []string{"one", "two", "six", "manual"} {
		if ent := got[n]; !ent.Verified || !ent.Trusted() {
			t.Errorf("%s: verified=%v unverified=%q; a forged catalog entry decided its trust", n, ent.Verified, ent.Unverified)
		}
	}
	if ent := got["manual"]; ent.Target != "" || ent.Scheduled {
		t.Errorf("manual listed as target %q scheduled %v: the catalog's claim", ent.Target, ent.Scheduled)
	}

	// Retention deletes only what the manifest itself condemns: the manual
	// backup is not t1's, and the unsigned one claims to be but does not
	// verify.
	t1 := func(m *Manifest) error {
		if m.Target != "t1" || !m.Scheduled {
			return ErrInvalid
		}
		return nil
	}
	for _, n := range []string{"manual", "unsigned"} {
		deleted, err := e.DeleteIf(ctx, MustParseName(n), nil, t1)
		if err != nil || len(deleted) != 0 {
			t.Errorf("DeleteIf(%s) = %v, %v; want it kept", n, deleted, err)
		}
		if _, err := s.Stat(ctx, ManifestKey(MustParseName(n))); err != nil {
			t.Errorf("%s: manifest gone after a refused delete: %v", n, err)
		}
	}
}
