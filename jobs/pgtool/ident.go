package pgtool

import (
	"errors"
	"fmt"
)

// ErrBadIdent is the class of ParseIdent's errors.
var ErrBadIdent = errors.New("not a valid identifier")

// Ident is a database name that passed the identifier rule (see
// ParseIdent), so it is safe in a command line and in SQL without a
// second look. Its zero value is no name at all, which whoever requires
// one refuses; ParseIdent and UnmarshalText are the only ways to make
// another. Parse an identifier once, where it enters (an HTTP request, a
// task payload, a setting), and pass the Ident on.
type Ident struct{ s string }

// ParseIdent accepts a plain PostgreSQL identifier: a letter or '_', then
// letters, digits, '_' or '$', at most 63 in all (see ValidIdentifier).
func ParseIdent(s string) (Ident, error) {
	if !ValidIdentifier(s) {
		shown := s
		if len(shown) > 64 {
			shown = shown[:64] + "..."
		}
		return Ident{}, fmt.Errorf("%q is %w (letters, digits, _ and $, at most 63)", shown, ErrBadIdent)
	}
	return Ident{s}, nil
}

// MustParseIdent is ParseIdent for identifiers known to be valid
// (constants, tests); it panics on an invalid one.
func MustParseIdent(s string) Ident {
	id, err := ParseIdent(s)
	if err != nil {
		panic(err)
	}
	return id
}

// String returns the identifier as written.
func (id Ident) String() string { return id.s }

// IsZero reports whether id is no identifier.
func (id Ident) IsZero() bool { return id.s == "" }

// MarshalText writes the identifier as a plain string, so JSON keeps its
// string fields.
func (id Ident) MarshalText() ([]byte, error) { return []byte(id.s), nil }

// UnmarshalText parses an identifier (see ParseIdent); an empty text is no
// identifier, which whoever reads it refuses where one is required.
func (id *Ident) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*id = Ident{}
		return nil
	}
	p, err := ParseIdent(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}
