package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// restoreServer restores the chosen databases of a whole-server backup,
// each into the database of its name.
func (e *Engine) restoreServer(ctx context.Context, s store.Store, m *Manifest, req RestoreRequest, res *RestoreResult, log *logrus.Entry) error {
	if !req.TargetDatabase.IsZero() || req.Replace {
		return fmt.Errorf("%w: a whole-server backup restores each database under its own name: choose them with databases, not target_database or replace", ErrInvalid)
	}
	parts, err := m.serverParts(req.Databases)
	if err != nil {
		return err
	}
	for _, d := range parts {
		if err := e.restoreArchive(ctx, s, m.part(d), d.Database, req.Clean, req.Progress, log); err != nil {
			return fmt.Errorf("database %s: %w", d.Database, err)
		}
		res.Databases = append(res.Databases, d.Database)
	}
	return nil
}

// serverParts selects the databases of a whole-server backup to restore
// (all when names is empty). The names were parsed where the request
// entered; only a missing one (the zero Ident) is refused here.
func (m *Manifest) serverParts(names []pgtool.Ident) ([]DatabaseArchive, error) {
	if len(names) == 0 {
		return m.Databases, nil
	}
	var out []DatabaseArchive
	for _, id := range names {
		if id.IsZero() {
			return nil, fmt.Errorf("%w: an empty database name in databases", ErrInvalid)
		}
		n := id.String()
		i := slices.IndexFunc(m.Databases, func(d DatabaseArchive) bool { return d.Database == n })
		if i < 0 {
			return nil, fmt.Errorf("%w: backup %s holds no database %q", ErrNotFound, m.Name, n)
		}
		out = append(out, m.Databases[i])
	}
	return out, nil
}
