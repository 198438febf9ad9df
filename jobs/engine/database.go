package engine

import (
	"fmt"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// AllDatabases as a backup's database (in the API, a payload or a
// target's setting) asks for a whole-server backup; the engine's request
// says it with BackupRequest.WholeServer.
const AllDatabases = "*"

// ParseDatabase parses one database name of a request (a restore's target,
// a whole-server restore's choice, a drill's scratch database) once, where
// it enters: a plain identifier (see pgtool.ParseIdent), else ErrInvalid.
func ParseDatabase(s string) (pgtool.Ident, error) {
	id, err := pgtool.ParseIdent(s)
	if err != nil {
		return pgtool.Ident{}, fmt.Errorf("%w: database %w", ErrInvalid, err)
	}
	return id, nil
}

// ParseDatabases parses a list of database names (see ParseDatabase).
func ParseDatabases(names []string) ([]pgtool.Ident, error) {
	var ids []pgtool.Ident
	for _, n := range names {
		id, err := ParseDatabase(n)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// ParseBackupDatabase parses what a backup dumps: "" is the configured
// database (a zero db), AllDatabases the whole server (whole), anything
// else one database (see ParseDatabase).
func ParseBackupDatabase(s string) (db pgtool.Ident, whole bool, err error) {
	switch s {
	case "":
		return pgtool.Ident{}, false, nil
	case AllDatabases:
		return pgtool.Ident{}, true, nil
	}
	db, err = ParseDatabase(s)
	return db, false, err
}
