package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/store"
)

// Delete removes a backup's manifest and archive from the named stores (all
// when empty) and returns where it was deleted. The manifest goes first, so
// a failure half way leaves an unlisted archive, never a listed backup with
// no archive; before it, a deletion record (see recordDeletion), so that
// adoption never takes such an archive for one of the old manager's. An
// adopted backup's archive is deleted where it lies (for a file of the
// old manager at the root of BACKUP_DIR, that file); a directory dump's
// folder is not part of the backup and stays.
func (e *Engine) Delete(ctx context.Context, name Name, from []string) ([]string, error) {
	return e.deleteWhere(ctx, name, from, nil)
}

// DeleteIf is Delete for a caller that decided on a listing, as retention
// does: in each store it reads the backup's own manifest again and
// deletes that copy only if the manifest's signature verifies (when this
// engine has a key) and condemn(m) is nil. A listing may come from the
// store's catalog, a cache anyone who can write the store can forge; this
// way only the manifest itself can get a backup deleted. A copy kept is
// logged with the reason; when every copy is kept, the result is empty and
// the error nil.
func (e *Engine) DeleteIf(ctx context.Context, name Name, from []string, condemn func(*Manifest) error) ([]string, error) {
	return e.deleteWhere(ctx, name, from, func(m *Manifest) error {
		if err := e.checkSignature(m, false); err != nil {
			return err
		}
		return condemn(m)
	})
}

// deleteWhere deletes name's copies whose manifest check accepts (all
// when check is nil).
func (e *Engine) deleteWhere(ctx context.Context, name Name, from []string, check func(*Manifest) error) ([]string, error) {
	if err := name.required(); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	stores, err := e.pick(from)
	if err != nil {
		return nil, fmt.Errorf("delete %s: %w", name, err)
	}
	var deleted []string
	kept := 0
	for _, s := range stores {
		m, err := e.readManifest(ctx, s, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("delete %s: %w", name, err)
		}
		if check != nil {
			if err := check(m); err != nil {
				kept++
				e.log.WithError(err).WithFields(logrus.Fields{"backup_name": name, "store": s.Name()}).
					Warn("not deleting: the backup's own manifest does not allow it")
				continue
			}
		}
		if err := e.recordDeletion(ctx, s, m); err != nil {
			return deleted, fmt.Errorf("delete %s: %w", name, err)
		}
		if err := s.Delete(ctx, ManifestKey(name)); err != nil {
			return deleted, fmt.Errorf("delete %s from %s: %w", name, s.Name(), err)
		}
		for _, k := range m.objectKeys() {
			if err := s.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
				return deleted, fmt.Errorf("delete %s from %s: %w", k, s.Name(), err)
			}
		}
		deleted = append(deleted, s.Name())
	}
	if len(deleted) == 0 && kept > 0 {
		return nil, nil
	}
	if len(deleted) == 0 {
		return nil, fmt.Errorf("delete: %w: %s in %v", ErrNotFound, name, names(stores))
	}
	e.log.WithFields(logrus.Fields{"backup_name": name, "stores": deleted}).Info("backup deleted")
	return deleted, nil
}
