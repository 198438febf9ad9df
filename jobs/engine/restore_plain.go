package engine

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// psqlEnv pins what psql's lexing depends on at the start of every
// session, so that plainScanner knows it: standard_conforming_strings on
// (a server or role default of off would otherwise make psql read '...'
// with backslash escapes from the first line), and UTF8 as the client
// encoding (psql would otherwise pick one from the locale, and lexes
// encodings such as SJIS differently). psql's messages stay in English so
// that its refusal in restricted mode is recognised.
var psqlEnv = []string{"PGOPTIONS=-c standard_conforming_strings=on", "PGCLIENTENCODING=UTF8", "LC_MESSAGES=C"}

// restrictedMsg is what psql prints when restricted mode refuses a
// meta-command.
const restrictedMsg = "backslash commands are restricted"

// runPlain runs the plain SQL archive at path through psql on conn, as
// preparePlain rewrites it (behind a \restrict key of its own, filter
// applied, checked by plainScanner on exactly those bytes). args come
// before --dbname and --file. A meta-command psql refuses is
// ErrInvalidArchive, as is one the scanner refuses (then psql never
// starts).
func (e *Engine) runPlain(ctx context.Context, tools pgtool.Tools, conn pgtool.Conn, path string, filter func(string) (string, bool), args ...string) error {
	if !hasRestrict(tools) {
		return fmt.Errorf("%w: psql %s in %s has no \\restrict, which plain restores need to refuse a planted meta-command "+
			"(13.22, 14.19, 15.14, 16.10, 17.6 or newer)", pgtool.ErrNoMatchingClient, tools.Version, tools.Dir)
	}
	key, err := restrictKey()
	if err != nil {
		return err
	}
	prepared := path + ".psql"
	out, err := os.OpenFile(prepared, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("prepare %s for psql: %w", path, err)
	}
	defer os.Remove(prepared)
	err = checkFile(path, func(r io.Reader) error {
		return preparePlain(r, out, plainOptions{key: key, filter: filter, noScan: e.noPlainScan})
	})
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("prepare %s for psql: %w", path, cerr)
	}
	if err != nil {
		return err
	}
	args = append(args, "--dbname="+conn.Database, "--file="+prepared)
	cmd := tools.Command(ctx, conn, "psql", args...)
	cmd.Env = append(cmd.Env, psqlEnv...)
	if err := cmd.Run(); err != nil {
		if strings.Contains(err.Error(), restrictedMsg) {
			return fmt.Errorf("%w: psql refused a meta-command in restricted mode: %w", ErrInvalidArchive, err)
		}
		return err
	}
	return nil
}

// checkPlain is checkPlainSQL, unless a test turned the scanner off.
func (e *Engine) checkPlain(r io.Reader) error {
	if e.noPlainScan {
		return nil
	}
	return checkPlainSQL(r)
}

// restrictSince is the first minor release of each major whose psql has
// \restrict (August 2025); every later major has it.
var restrictSince = map[int]int{13: 22, 14: 19, 15: 14, 16: 10, 17: 6}

// hasRestrict reports whether the tools' psql knows \restrict.
func hasRestrict(t pgtool.Tools) bool {
	if t.Major >= 18 {
		return true
	}
	since, ok := restrictSince[t.Major]
	_, minor, _ := strings.Cut(t.Version, ".")
	n, err := strconv.Atoi(minor)
	return ok && err == nil && n >= since
}

// restrictKey returns a fresh key for psql's \restrict: random, so that
// no archive can hold the \unrestrict that ends it.
func restrictKey() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 40)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("restrict key: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
