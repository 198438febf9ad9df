package engine

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/autograph/pgbackup/internal/loop"
	"github.com/autograph/pgbackup/store"
)

// CatalogKey is where a store keeps its catalog: every manifest it holds,
// each with the ETag of the manifest object it was read from. Backup names
// never start with '.', so the key cannot be a backup's. The catalog is a
// cache anyone who can write the store can write: an entry stands for a
// manifest only when the listed object's ETag proves its content (see
// provenBy), its signature is checked like the manifest's, and restores,
// verifies, drills and deletes always read the manifest itself.
const CatalogKey = Prefix + ".catalog.json"

// catalogMinEntries is the size from which a store gets a catalog: below
// it, reading every manifest is fast enough and a catalog object would
// only be one more thing in the bucket.
const catalogMinEntries = 100

// manifestCache keeps decoded manifests per store, by manifest key and
// ETag, so that listing a store reads only the manifests that changed
// since the last listing. The listing of the store is always the truth:
// an entry is used only when the manifest object still has the ETag it
// was read with.
type manifestCache struct {
	mu      sync.Mutex
	byStore map[string]*storeCache
}

type storeCache struct {
	entries map[string]cachedManifest
	// loaded: the store's catalog was read (or found missing) once.
	loaded bool
	// writing: a catalog write for this store is under way.
	writing bool
}

type cachedManifest struct {
	etag string
	m    *Manifest
	// checked: sigErr is the verdict on m's signature (see verdict). It is
	// always computed here, never read from a catalog.
	checked bool
	sigErr  error
}

func (c *manifestCache) store(name string) *storeCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byStore == nil {
		c.byStore = map[string]*storeCache{}
	}
	sc, ok := c.byStore[name]
	if !ok {
		sc = &storeCache{entries: map[string]cachedManifest{}}
		c.byStore[name] = sc
	}
	return sc
}

// catalogFile is the catalog's JSON.
type catalogFile struct {
	Version int            `json:"version"`
	Written time.Time      `json:"written"`
	Entries []catalogEntry `json:"entries"`
}

type catalogEntry struct {
	Key  string `json:"key"`
	ETag string `json:"etag"`
	// Manifest is the manifest object's bytes exactly (base64 in the
	// JSON): a json.RawMessage would be compacted on the way out, and the
	// ETag could no longer prove an indented manifest's content.
	Manifest []byte `json:"manifest"`
}

// catalogVersion is the catalog's format; 1 held manifests as (compacted)
// JSON, which no ETag could prove, and is ignored and rewritten.
const catalogVersion = 2

// provenBy reports whether raw is beyond doubt the content of an object
// whose ETag is etag. S3 gives two such ETags: a single PUT's is the MD5 of
// the content, and a multipart upload of one part (how the MinIO store
// writes a manifest, which is far smaller than a part) is the MD5 of that
// MD5 followed by "-1". Other ETags (the local store's size and time, a
// multipart upload of several parts, SSE-KMS) say nothing checkable about
// the content, so a catalog entry with one is never used: whoever can write
// the catalog could otherwise pair any manifest with a listed object's ETag.
func provenBy(raw []byte, etag string) bool {
	t := strings.ToLower(strings.Trim(etag, `"`))
	sum := md5.Sum(raw)
	if h, ok := strings.CutSuffix(t, "-1"); ok {
		t, sum = h, md5.Sum(sum[:])
	}
	return len(t) == 32 && hex.EncodeToString(sum[:]) == t
}

// loadCatalog fills the cache from the store's catalog, once per process
// and store; entries are checked against the listing when used.
func (e *Engine) loadCatalog(ctx context.Context, s store.Store, sc *storeCache) {
	e.cache.mu.Lock()
	loaded := sc.loaded
	sc.loaded = true
	e.cache.mu.Unlock()
	if loaded {
		return
	}
	rc, err := s.Get(ctx, CatalogKey)
	if err != nil {
		return // none yet, or unreadable: the manifests are read instead
	}
	defer rc.Close()
	var cf catalogFile
	if err := json.NewDecoder(io.LimitReader(rc, 1<<30)).Decode(&cf); err != nil || cf.Version != catalogVersion {
		e.log.WithField("store", s.Name()).Warn("ignoring an unreadable catalog; it will be rebuilt")
		return
	}
	e.cache.mu.Lock()
	defer e.cache.mu.Unlock()
	for _, ent := range cf.Entries {
		if _, ok := sc.entries[ent.Key]; ok {
			continue
		}
		// The catalog is a cache anyone who can write the store may have
		// written: an entry is kept only if its ETag proves its content, so
		// that a listing uses it only for the very object it lists.
		if !provenBy(ent.Manifest, ent.ETag) {
			continue
		}
		m, err := decodeManifest(ent.Manifest)
		if err != nil || ManifestKey(m.Name) != ent.Key {
			continue
		}
		sc.entries[ent.Key] = cachedManifest{etag: ent.ETag, m: m}
	}
}

// cachedOrFetch returns the manifest under key: the cached one if the
// object still has its ETag and size (a catalog entry is in the cache only
// when that ETag proves its content, see loadCatalog), else a fresh read.
func (e *Engine) cachedOrFetch(ctx context.Context, s store.Store, sc *storeCache, o store.ObjectInfo, name Name) (*Manifest, bool, error) {
	e.cache.mu.Lock()
	c, ok := sc.entries[o.Key]
	e.cache.mu.Unlock()
	if ok && o.ETag != "" && c.etag == o.ETag && int64(len(c.m.raw)) == o.Size {
		return c.m, false, nil
	}
	m, err := e.fetchManifest(ctx, s, name)
	if err != nil {
		return nil, true, err
	}
	if o.ETag != "" {
		e.cache.mu.Lock()
		sc.entries[o.Key] = cachedManifest{etag: o.ETag, m: m}
		e.cache.mu.Unlock()
	}
	return m, true, nil
}

// forgetMissing drops cached manifests the listing no longer has and
// reports whether any were dropped.
func (e *Engine) forgetMissing(sc *storeCache, listed map[string]bool) bool {
	e.cache.mu.Lock()
	defer e.cache.mu.Unlock()
	dropped := false
	for k := range sc.entries {
		if !listed[k] {
			delete(sc.entries, k)
			dropped = true
		}
	}
	return dropped
}

// writeCatalog stores the cache as the store's catalog, in the background
// and one write at a time per store. Several processes may write at once:
// any of their catalogs is fine, since every entry is checked when used.
func (e *Engine) writeCatalog(s store.Store, sc *storeCache) {
	e.cache.mu.Lock()
	if sc.writing || len(sc.entries) < catalogMinEntries {
		e.cache.mu.Unlock()
		return
	}
	sc.writing = true
	cf := catalogFile{Version: catalogVersion, Written: time.Now().UTC(), Entries: make([]catalogEntry, 0, len(sc.entries))}
	for k, c := range sc.entries {
		// Entries a reader would drop are not written: a store whose ETags
		// are not content hashes (the local one) gets no catalog.
		if provenBy(c.m.raw, c.etag) {
			cf.Entries = append(cf.Entries, catalogEntry{Key: k, ETag: c.etag, Manifest: c.m.raw})
		}
	}
	if len(cf.Entries) < catalogMinEntries {
		sc.writing = false
		e.cache.mu.Unlock()
		return
	}
	e.cache.mu.Unlock()
	go func() {
		defer func() {
			e.cache.mu.Lock()
			sc.writing = false
			e.cache.mu.Unlock()
		}()
		log := e.log.WithField("store", s.Name())
		loop.Once(context.Background(), log, fmt.Sprintf("could not write the catalog of %d manifests", len(cf.Entries)), func(context.Context) error {
			b, err := json.Marshal(cf)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			return s.Put(ctx, CatalogKey, bytes.NewReader(b), map[string]string{"entries": strconv.Itoa(len(cf.Entries))})
		})
	}()
}
