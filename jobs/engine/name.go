package engine

import (
	"fmt"
	"regexp"
)

// MaxNameLen is the longest accepted backup name.
const MaxNameLen = 128

var nameRe = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// Name is a backup name that passed the name rule (see ParseName), so it
// is always safe in a store key or a file name. Its zero value is no name
// at all, which the engine refuses; ParseName and UnmarshalText are the
// only ways to make another. Parse a name once, where it enters (an HTTP
// request, a task payload, a manifest read from a store), and pass the
// Name on.
type Name struct{ s string }

// ParseName enforces the backup name rule: letters, digits, '.', '_' and
// '-', 1 to 128 characters, not starting with '.'. Names become object keys
// and file names, so anything that could form a path is refused here,
// before any store sees it.
func ParseName(s string) (Name, error) {
	if !nameRe.MatchString(s) {
		shown := s
		if len(shown) > 40 {
			shown = shown[:40] + "..."
		}
		return Name{}, fmt.Errorf("%w: backup name %q: use 1 to %d letters, digits, '.', '_' or '-', not starting with '.'",
			ErrInvalid, shown, MaxNameLen)
	}
	return Name{s}, nil
}

// ValidateName reports whether s is a valid backup name (see ParseName),
// for callers that only check one.
func ValidateName(s string) error {
	_, err := ParseName(s)
	return err
}

// String returns the name as written.
func (n Name) String() string { return n.s }

// IsZero reports whether n is no name.
func (n Name) IsZero() bool { return n.s == "" }

// MarshalText writes the name as a plain string (in JSON, manifests and
// payloads keep their string fields).
func (n Name) MarshalText() ([]byte, error) { return []byte(n.s), nil }

// UnmarshalText parses a name (see ParseName); an empty text is no name,
// which whoever reads it refuses where a name is required.
func (n *Name) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*n = Name{}
		return nil
	}
	p, err := ParseName(string(b))
	if err != nil {
		return err
	}
	*n = p
	return nil
}

// required refuses the zero Name, with the error ParseName gives for an
// empty one: every other Name was parsed already.
func (n Name) required() error {
	if n.IsZero() {
		return ValidateName("")
	}
	return nil
}

// MustParseName is ParseName for names known to be valid (constants,
// tests); it panics on an invalid one.
func MustParseName(s string) Name {
	n, err := ParseName(s)
	if err != nil {
		panic(err)
	}
	return n
}
