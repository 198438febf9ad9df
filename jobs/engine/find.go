package engine

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/store"
)

// Find returns the manifest of a complete backup and the stores holding it,
// searching the named stores (all when empty).
func (e *Engine) Find(ctx context.Context, name Name, from []string) (*Manifest, []string, error) {
	if err := name.required(); err != nil {
		return nil, nil, err
	}
	stores, err := e.pick(from)
	if err != nil {
		return nil, nil, err
	}
	var found *Manifest
	var where []string
	trusted, at := false, 0
	for _, s := range stores {
		m, err := e.readManifest(ctx, s, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		// With a key, the first copy whose signature verifies is the one
		// used: a forged manifest in the first store must not stand in
		// for a good copy in another (it would be refused, or, with
		// allow_unsigned, restored).
		ok := e.signer.Enabled() && e.signer.check(m.Name, m.raw) == nil
		if found == nil || (ok && !trusted) {
			found, trusted, at = m, ok, len(where)
		}
		where = append(where, s.Name())
	}
	// The store the manifest came from comes first: restores read the
	// archive from where[0].
	if at > 0 {
		where[0], where[at] = where[at], where[0]
	}
	if found == nil {
		return nil, nil, fmt.Errorf("%w: %s in %v", ErrNotFound, name, names(stores))
	}
	return found, where, nil
}

// readManifest returns a backup's manifest from one store, provided its
// archive is also there with the recorded size.
func (e *Engine) readManifest(ctx context.Context, s store.Store, name Name) (*Manifest, error) {
	m, err := e.fetchManifest(ctx, s, name)
	if err != nil {
		return nil, err
	}
	return e.matchArchive(m, s, func(key string) (int64, error) { return statSize(ctx, s, key) })
}

// statSize is an archive's size, -1 when it is missing.
func statSize(ctx context.Context, s store.Store, key string) (int64, error) {
	info, err := s.Stat(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stat archive %s in %s: %w", key, s.Name(), err)
	}
	return info.Size, nil
}

// fetchManifest reads and decodes a manifest without looking at the archive.
func (e *Engine) fetchManifest(ctx context.Context, s store.Store, name Name) (*Manifest, error) {
	rc, err := s.Get(ctx, ManifestKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s from %s: %w", name, s.Name(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s from %s: %w", name, s.Name(), err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s in %s: %w", name, s.Name(), err)
	}
	if m.Name != name {
		return nil, fmt.Errorf("manifest %s in %s names %q", name, s.Name(), m.Name)
	}
	return m, nil
}

// matchArchive accepts the manifest only if its archive exists (size >= 0)
// with the recorded size: a manifest whose archive was removed or replaced
// by hand does not describe a restorable backup.
func (e *Engine) matchArchive(m *Manifest, s store.Store, sizeOf func(key string) (int64, error)) (*Manifest, error) {
	for key, want := range m.requiredSizes() {
		size, err := sizeOf(key)
		if err != nil {
			return nil, err
		}
		if size != want {
			e.log.WithFields(logrus.Fields{"backup_name": m.Name, "store": s.Name(), "key": key}).Warn("manifest without a matching archive; ignoring it")
			return nil, ErrNotFound
		}
	}
	return m, nil
}
