package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/autograph/pgbackup/store"
)

// Entry is one backup in a listing.
type Entry struct {
	Manifest
	// Locations are the stores where archive and manifest both are.
	Locations []string `json:"locations"`
	// Verified: this engine has a signing key, and the manifest's
	// signature verified in every store listed. A signature field alone
	// proves nothing: anyone who can write the bucket can write one.
	Verified bool `json:"verified,omitempty"`
	// Unverified, with a key, says why a copy's signature did not verify
	// (empty without a key or when every copy verified). Such a backup is
	// not trusted: it is never a target's newest good backup, never
	// restored by default and never pruned.
	Unverified string `json:"unverified,omitempty"`
}

// Trusted reports whether the backup may be used without a person
// deciding to: its manifest verified, or this engine has no key to check.
func (e *Entry) Trusted() bool { return e.Unverified == "" }

// List returns complete backups in the named stores (all when empty), merged
// by name, newest first. An archive without a manifest, or a manifest whose
// archive is missing or has the wrong size, is not a backup and is skipped.
func (e *Engine) List(ctx context.Context, from []string) ([]Entry, error) {
	stores, err := e.pick(from)
	if err != nil {
		return nil, err
	}
	byName := map[Name]*Entry{}
	for _, s := range stores {
		found, err := e.listStore(ctx, s)
		if err != nil {
			return nil, err
		}
		for _, lm := range found {
			ent, ok := byName[lm.m.Name]
			if ok {
				ent.Locations = append(ent.Locations, s.Name())
			} else {
				// Without the chunk sums: a listing never restores (Find
				// returns the whole manifest), and they grow with the archive.
				ent = &Entry{Manifest: *lm.m.Summary(), Locations: []string{s.Name()}, Verified: e.signer.Enabled()}
				byName[lm.m.Name] = ent
			}
			if lm.sigErr != nil && ent.Unverified == "" {
				ent.Verified, ent.Unverified = false, fmt.Sprintf("in %s: %v", s.Name(), lm.sigErr)
			}
		}
	}
	out := make([]Entry, 0, len(byName))
	for _, ent := range byName {
		out = append(out, *ent)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].FinishedAt.Equal(out[j].FinishedAt) {
			return out[i].FinishedAt.After(out[j].FinishedAt)
		}
		return out[i].Name.s < out[j].Name.s
	})
	return out, nil
}

// listedManifest is a manifest found by listing a store, with the verdict
// on its signature (see verdict).
type listedManifest struct {
	m      *Manifest
	sigErr error
}

// listStore returns the complete backups in one store. One listing gives
// every archive's size and every manifest's ETag; a manifest is read only
// when the cache (filled from the store's catalog on first use) does not
// hold it with that ETag, and those reads run a few at a time. So a store
// with thousands of backups lists with one listing and, warm, no reads.
func (e *Engine) listStore(ctx context.Context, s store.Store) ([]listedManifest, error) {
	objs, err := s.List(ctx, Prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.Name(), err)
	}
	sc := e.cache.store(s.Name())
	e.loadCatalog(ctx, s, sc)
	sizes := make(map[string]int64, len(objs))
	listed := make(map[string]bool, len(objs))
	type manifestObj struct {
		name Name
		obj  store.ObjectInfo
	}
	var manifests []manifestObj
	for _, o := range objs {
		sizes[o.Key] = o.Size
		if name, ok := manifestName(o.Key); ok {
			manifests = append(manifests, manifestObj{name, o})
			listed[o.Key] = true
		}
	}
	found := make([]listedManifest, len(manifests))
	var fetched sync.Mutex
	changed := e.forgetMissing(sc, listed)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, mo := range manifests {
		g.Go(func() error {
			m, read, err := e.cachedOrFetch(gctx, s, sc, mo.obj, mo.name)
			if read {
				fetched.Lock()
				changed = true
				fetched.Unlock()
			}
			if errors.Is(err, ErrNotFound) {
				return nil // deleted while listing
			}
			if err != nil {
				if errors.Is(err, store.ErrUnavailable) || gctx.Err() != nil {
					return err
				}
				e.log.WithError(err).WithField("store", s.Name()).Warn("skipping unreadable manifest")
				return nil
			}
			m, err = e.matchArchive(m, s, func(key string) (int64, error) {
				if size, ok := sizes[key]; ok {
					return size, nil
				}
				if !strings.HasPrefix(key, Prefix) {
					// An adopted archive where the old manager left it
					// (root of BACKUP_DIR): the listing does not cover it.
					return statSize(gctx, s, key)
				}
				return -1, nil
			})
			if err == nil {
				found[i] = listedManifest{m, e.verdict(s.Name(), sc, mo.obj, m)}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list %s: %w", s.Name(), err)
	}
	if changed {
		e.writeCatalog(s, sc)
	}
	return slices.DeleteFunc(found, func(lm listedManifest) bool { return lm.m == nil }), nil
}
