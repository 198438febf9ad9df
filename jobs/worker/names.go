package worker

import (
	"fmt"

	"github.com/autograph/pgbackup/jobs/engine"
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
