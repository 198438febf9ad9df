package engine

import (
	"fmt"
	"regexp"
	"strings"
)

// Format is a pg_dump output format.
type Format string

// The four pg_dump formats, under the names the old service used.
const (
	FormatCustom    Format = "custom"
	FormatPlain     Format = "plain"
	FormatDirectory Format = "directory"
	FormatTar       Format = "tar"
)

// Formats lists every supported format.
var Formats = []Format{FormatCustom, FormatPlain, FormatDirectory, FormatTar}

// ParseFormat accepts a format name; empty means custom.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "":
		return FormatCustom, nil
	case FormatCustom, FormatPlain, FormatDirectory, FormatTar:
		return f, nil
	}
	return "", fmt.Errorf("%w: unknown format %q (want custom, plain, directory or tar)", ErrInvalid, s)
}

// Extension is the archive's file name suffix. None is a suffix of another
// (nor of ".manifest.json"), so two backup names can never map to the same
// key. The directory format is stored as one tar stream of pg_dump -Fd's
// output; ".dirtar" says so without ending in ".tar", which would collide
// with the tar format of a name ending in ".dir".
func (f Format) Extension() string {
	switch f {
	case FormatPlain:
		return ".sql"
	case FormatDirectory:
		return ".dirtar"
	case FormatTar:
		return ".tar"
	default:
		return ".dump"
	}
}

// flag is pg_dump's --format letter.
func (f Format) flag() string {
	switch f {
	case FormatPlain:
		return "p"
	case FormatDirectory:
		return "d"
	case FormatTar:
		return "t"
	default:
		return "c"
	}
}

// compresses reports whether pg_dump -Z applies to the format. Tar archives
// cannot be compressed by pg_dump; plain output is left readable.
func (f Format) compresses() bool { return f == FormatCustom || f == FormatDirectory }

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

// Prefix is where archives and manifests live in every store, as in the
// old service.
const Prefix = "postgres/"

const manifestSuffix = ".manifest.json"

// ArchiveKey is the store key of a backup's archive.
func ArchiveKey(name string, f Format) string { return Prefix + name + f.Extension() }

// ManifestKey is the store key of a backup's manifest.
func ManifestKey(name string) string { return Prefix + name + manifestSuffix }
