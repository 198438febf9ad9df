package worker

import (
	"fmt"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// parseBackupName parses a payload's backup name where the worker decodes
// the payload: the engine takes only parsed names, and a payload is input
// like any request.
func parseBackupName(op, s string) (engine.Name, error) {
	name, err := engine.ParseName(s)
	if err != nil {
		return engine.Name{}, fmt.Errorf("%s: %w", op, err)
	}
	return name, nil
}

// parseBackupPayload parses what a backup payload names (backup name,
// database or "*", format) into the engine's request; the caller adds the
// rest. A payload that does not parse is ErrInvalid, never retried.
func parseBackupPayload(p tasks.BackupPayload) (engine.BackupRequest, error) {
	name, err := parseBackupName("backup", p.BackupName)
	if err != nil {
		return engine.BackupRequest{}, err
	}
	db, whole, err := engine.ParseBackupDatabase(p.Database)
	if err != nil {
		return engine.BackupRequest{}, fmt.Errorf("backup %s: %w", name, err)
	}
	format, err := engine.ParseFormat(p.Format)
	if err != nil {
		return engine.BackupRequest{}, fmt.Errorf("backup %s: %w", name, err)
	}
	return engine.BackupRequest{Name: name, Database: db, WholeServer: whole, Format: format}, nil
}

// parseRestorePayload parses what a restore payload names (backup name,
// target database, databases) into the engine's request; the caller adds
// the rest.
func parseRestorePayload(p tasks.RestorePayload) (engine.RestoreRequest, error) {
	name, err := parseBackupName("restore", p.BackupName)
	if err != nil {
		return engine.RestoreRequest{}, err
	}
	req := engine.RestoreRequest{Name: name}
	if p.TargetDatabase != "" {
		if req.TargetDatabase, err = engine.ParseDatabase(p.TargetDatabase); err != nil {
			return engine.RestoreRequest{}, fmt.Errorf("restore %s: target %w", name, err)
		}
	}
	if req.Databases, err = engine.ParseDatabases(p.Databases); err != nil {
		return engine.RestoreRequest{}, fmt.Errorf("restore %s: %w", name, err)
	}
	return req, nil
}
