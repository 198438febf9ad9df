package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// validateBackup is a backup's first stage: it checks the request and
// resolves it against this engine (default database, stores). Nothing has
// been read or written yet.
func (e *Engine) validateBackup(req BackupRequest) (*backupJob, error) {
	if err := req.Name.required(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	// Name, Format and Database were parsed where the request entered;
	// only a missing format is left to refuse.
	if err := req.Format.required(); err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	db, err := e.backupDatabase(req)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	targets, err := e.pick(req.Stores)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	log := e.log.WithFields(logrus.Fields{"backup_name": req.Name, "database": db, "format": req.Format})
	return &backupJob{BackupRequest: req, db: db, targets: targets, log: log}, nil
}

// backupDatabase is the database a backup dumps: the request's, every one
// (AllDatabases), or the server's configured one. Only that last is not a
// parsed Ident (a pgtool.Conn holds a string), so only it is checked here.
func (e *Engine) backupDatabase(req BackupRequest) (string, error) {
	switch {
	case req.WholeServer && !req.Database.IsZero():
		return "", fmt.Errorf("%w: a whole-server backup names no database (%s)", ErrInvalid, req.Database)
	case req.WholeServer:
		return AllDatabases, nil
	case !req.Database.IsZero():
		return req.Database.String(), nil
	}
	if !pgtool.ValidIdentifier(e.conn.Database) {
		return "", fmt.Errorf("%w: configured database name %q is not a valid identifier", ErrInvalid, e.conn.Database)
	}
	return e.conn.Database, nil
}

// claimName checks that the name is free. Names are unique across every
// store, not only the targets, so that a later restore or delete by name
// is never ambiguous. It returns the manifest of the backup an earlier
// attempt of the same task finished (see resumable), or nil to go on.
func (e *Engine) claimName(ctx context.Context, op string, name Name, taskID string, log *logrus.Entry) (*Manifest, error) {
	existing, where, err := e.Find(ctx, name, nil)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, name, err)
	}
	done, err := resumable(name, taskID, existing, where, log)
	if err != nil || !done {
		return nil, err
	}
	return existing, nil
}

// resumable decides what a backup finds under its name. An earlier attempt
// of the same task (a worker killed, a lease lost) may have finished
// (done: return it) or stopped after some stores had their copy: then the
// task's own partial work is replaced by a new attempt (stores' Puts
// replace). Anything else is another backup of that name: ErrExists.
func resumable(name Name, taskID string, existing *Manifest, where []string, log *logrus.Entry) (done bool, err error) {
	if taskID == "" || existing.TaskID != taskID {
		return false, fmt.Errorf("backup %s: %w in %v", name, ErrExists, where)
	}
	if containsAll(where, existing.Stores) {
		log.Info("backup already completed by an earlier attempt of this task")
		return true, nil
	}
	log.WithField("found_in", where).Warn("an earlier attempt of this task stopped part way; backing up again")
	return false, nil
}
