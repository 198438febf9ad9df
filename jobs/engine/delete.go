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
	if err := name.required(); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	stores, err := e.pick(from)
	if err != nil {
		return nil, fmt.Errorf("delete %s: %w", name, err)
	}
	var deleted []string
	for _, s := range stores {
		m, err := e.readManifest(ctx, s, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("delete %s: %w", name, err)
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
	if len(deleted) == 0 {
		return nil, fmt.Errorf("delete: %w: %s in %v", ErrNotFound, name, names(stores))
	}
	e.log.WithFields(logrus.Fields{"backup_name": name, "stores": deleted}).Info("backup deleted")
	return deleted, nil
}
