package engine

import (
	"fmt"
	"strings"
)

// Format is a pg_dump output format that is a row of the formats table:
// ParseFormat, UnmarshalText and the four Format* values below are the
// only ways to make one, so the engine never checks a format again. Its
// zero value is no format at all, which a backup refuses; in JSON (API,
// payloads, manifests) a Format is its plain name.
type Format struct{ name string }

// The four pg_dump formats, under the names the old service used.
var (
	FormatCustom    = Format{"custom"}
	FormatPlain     = Format{"plain"}
	FormatDirectory = Format{"directory"}
	FormatTar       = Format{"tar"}
)

// formatSpec holds everything the engine knows about one format, so that
// adding or changing a format is one row in formats, not a switch in every
// function that dumps, restores or verifies.
type formatSpec struct {
	// ext is the archive's key suffix. None is a suffix of another (nor of
	// ".manifest.json"), so two backup names never map to the same key.
	ext string
	// flag is pg_dump's and pg_restore's --format letter.
	flag string
	// pgCompress says whether pg_dump -Z applies. Tar archives cannot be
	// compressed by pg_dump; plain output is left readable.
	pgCompress bool
	// toDir: pg_dump writes a directory (in parallel), which the engine
	// streams as one tar; restore and verify extract it again first.
	toDir bool
	// psql: restored by running the SQL through psql rather than pg_restore.
	psql bool
	// oneTransaction: the restore can run as a single transaction, so a
	// failure leaves the target as it was. Parallel restore cannot.
	oneTransaction bool
	// parallel: pg_restore -j applies.
	parallel bool
	// listable: pg_restore --list can read the table of contents (verify).
	listable bool
	// stream: restored by streaming the archive into pg_restore (no disk),
	// which overlaps the download with the restore. Plain archives must be
	// read whole first (their meta-commands are checked before psql runs),
	// and directory archives are extracted for pg_restore -j.
	stream bool
}

// formats is the table of supported formats. The directory format is stored
// as one tar stream of pg_dump -Fd's output; ".dirtar" says so without
// ending in ".tar", which would collide with the tar format of a name
// ending in ".dir".
var formats = map[Format]formatSpec{
	FormatCustom:    {ext: ".dump", flag: "c", pgCompress: true, oneTransaction: true, listable: true, stream: true},
	FormatPlain:     {ext: ".sql", flag: "p", psql: true, oneTransaction: true},
	FormatDirectory: {ext: ".dirtar", flag: "d", pgCompress: true, toDir: true, parallel: true, listable: true},
	FormatTar:       {ext: ".tar", flag: "t", oneTransaction: true, listable: true, stream: true},
}

// Formats lists every supported format, in the order the API documents them.
var Formats = []Format{FormatCustom, FormatPlain, FormatDirectory, FormatTar}

// ParseFormat accepts a format name; empty means custom.
func ParseFormat(s string) (Format, error) {
	f := Format{strings.ToLower(strings.TrimSpace(s))}
	if f.IsZero() {
		return FormatCustom, nil
	}
	if _, ok := formats[f]; ok {
		return f, nil
	}
	return Format{}, fmt.Errorf("%w: unknown format %q (want custom, plain, directory or tar)", ErrInvalid, s)
}

// MustParseFormat is ParseFormat for formats known to be valid (constants,
// tests); it panics on an unknown one.
func MustParseFormat(s string) Format {
	f, err := ParseFormat(s)
	if err != nil {
		panic(err)
	}
	return f
}

// String returns the format's name ("" for no format).
func (f Format) String() string { return f.name }

// IsZero reports whether f is no format.
func (f Format) IsZero() bool { return f.name == "" }

// MarshalText writes the format's name, so JSON keeps a plain string.
func (f Format) MarshalText() ([]byte, error) { return []byte(f.name), nil }

// UnmarshalText parses a format name (see ParseFormat), except that an
// empty text stays no format: a manifest written without one keeps reading
// as it was written (and restores as custom, see spec).
func (f *Format) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*f = Format{}
		return nil
	}
	p, err := ParseFormat(string(b))
	if err != nil {
		return err
	}
	*f = p
	return nil
}

// required refuses the zero Format: every other Format is a row of the
// table already.
func (f Format) required() error {
	if f.IsZero() {
		return fmt.Errorf("%w: no format (want custom, plain, directory or tar)", ErrInvalid)
	}
	return nil
}

// spec returns the format's row; no format (an old manifest's empty one)
// reads as custom, as ParseFormat reads an empty name.
func (f Format) spec() formatSpec {
	if s, ok := formats[f]; ok {
		return s
	}
	return formats[FormatCustom]
}

// Extension is the archive's file name suffix.
func (f Format) Extension() string { return f.spec().ext }
