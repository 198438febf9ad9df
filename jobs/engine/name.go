package engine

import (
	"fmt"
	"regexp"
)

// MaxNameLen is the longest accepted backup name.
const MaxNameLen = 128

var nameRe = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// ValidateName enforces the backup name rule: letters, digits, '.', '_' and
// '-', 1 to 128 characters, not starting with '.'. Names become object keys
// and file names, so anything that could form a path is refused here, before
// any store sees it.
func ValidateName(name string) error {
	if !nameRe.MatchString(name) {
		shown := name
		if len(shown) > 40 {
			shown = shown[:40] + "..."
		}
		return fmt.Errorf("%w: backup name %q: use 1 to %d letters, digits, '.', '_' or '-', not starting with '.'",
			ErrInvalid, shown, MaxNameLen)
	}
	return nil
}
