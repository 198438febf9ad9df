package pgtool

import (
	"fmt"
	"regexp"
	"strings"
)

// ToolError is a pg_dump, pg_restore or psql that exited with an error.
// Its text is the tool's name, exit status and stderr, as before; it also
// carries the first error line the tool printed, which is the one that
// stopped it (--exit-on-error, ON_ERROR_STOP), and unwraps to the class
// of that error when Classify recognises it.
type ToolError struct {
	Tool string
	// FirstError is the first line that reports an error, without the
	// tool's "pg_restore: error:" prefix; empty when there is none.
	FirstError string
	// Stderr is the end of what the tool wrote to stderr.
	Stderr string
	// Err is how the process ended (an *exec.ExitError, a signal).
	Err error
	// Kind is the class Classify found in Stderr, or nil.
	Kind error
}

func (e *ToolError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		return fmt.Sprintf("%s: %v", e.Tool, e.Err)
	}
	firstLine, _, _ := strings.Cut(msg, "\n")
	if e.FirstError != "" && !strings.Contains(firstLine, e.FirstError) {
		// Put the error that stopped the tool first, where a reader of
		// a one-line task error looks.
		return fmt.Sprintf("%s: %v: %s: %s", e.Tool, e.Err, e.FirstError, msg)
	}
	return fmt.Sprintf("%s: %v: %s", e.Tool, e.Err, msg)
}

// Unwrap gives errors.Is and errors.As the process error and the class.
func (e *ToolError) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Kind}
}

// newToolError builds the error of a tool that failed with err, from the
// beginning (head) and end (tail) of its stderr.
func newToolError(tool string, err error, head, tail string) *ToolError {
	first := FirstErrorLine(head)
	if first == "" {
		first = FirstErrorLine(tail)
	}
	return &ToolError{Tool: tool, Err: err, Stderr: tail, FirstError: first, Kind: Classify(head + "\n" + tail)}
}

// errorLineRe finds a line reporting an error: the server's "ERROR:" or
// "FATAL:" (psql prefixes them with the file and line), or a client
// tool's own "pg_restore: error:".
var errorLineRe = regexp.MustCompile(`(?m)^(?:[^\n]*?\b(?:ERROR|FATAL|PANIC):\s+|\S+: error: )([^\n]*)$`)

// FirstErrorLine returns the first error reported in a tool's stderr,
// without the tool's prefix, or "" when none is recognised. pg_restore
// nests the server's error in its own ("could not execute query: ERROR:
// ..."); the server's part is kept.
func FirstErrorLine(stderr string) string {
	m := errorLineRe.FindStringSubmatch(stderr)
	if m == nil {
		return ""
	}
	line := strings.TrimSpace(m[0])
	if i := strings.Index(line, ": error: "); i >= 0 && !strings.Contains(line[:i], "ERROR:") {
		line = strings.TrimSpace(line[i+len(": error: "):])
	}
	for _, sev := range []string{"ERROR:", "FATAL:", "PANIC:"} {
		if i := strings.Index(line, sev); i >= 0 {
			return strings.TrimSpace(line[i:])
		}
	}
	return line
}

// sqlstateRe finds a SQLSTATE in verbose messages ("ERROR:  42P07:
// relation ... already exists"): unlike the text, it is never translated.
var sqlstateRe = regexp.MustCompile(`:\s+([0-9A-Z]{5}):\s`)

// pattern is one row of what a tool may print and what it means.
type pattern struct {
	// sqlstate is a SQLSTATE code or class prefix; text an English
	// message fragment, matched case-sensitively.
	sqlstate, text string
	kind           error
}

// permanentPatterns are the failures a retry cannot fix. Everything else
// is retried: a lost connection, a server shutting down, out of memory or
// disk, a timeout, a deadlock, and any message not recognised here, such
// as one a server printed in another language without its SQLSTATE.
var permanentPatterns = []pattern{
	{sqlstate: "28", kind: ErrAuth},
	{sqlstate: "3D000", kind: ErrNoDatabase},
	{sqlstate: "23", kind: ErrConstraint},
	{sqlstate: "42501", kind: ErrPermission},
	{sqlstate: "42601", kind: ErrSQLSyntax},
	{sqlstate: "42P04", kind: ErrObjectExists}, {sqlstate: "42P05", kind: ErrObjectExists},
	{sqlstate: "42P06", kind: ErrObjectExists}, {sqlstate: "42P07", kind: ErrObjectExists},
	{sqlstate: "42701", kind: ErrObjectExists}, {sqlstate: "42710", kind: ErrObjectExists},
	{sqlstate: "42712", kind: ErrObjectExists}, {sqlstate: "42723", kind: ErrObjectExists},
	{sqlstate: "42P01", kind: ErrUndefinedObject}, {sqlstate: "42703", kind: ErrUndefinedObject},
	{sqlstate: "42704", kind: ErrUndefinedObject}, {sqlstate: "42883", kind: ErrUndefinedObject},
	{sqlstate: "3F000", kind: ErrUndefinedObject},

	{text: "password authentication failed", kind: ErrAuth},
	{text: "no password supplied", kind: ErrAuth},
	{text: "no pg_hba.conf entry", kind: ErrAuth},
	{text: `" does not exist`, kind: ErrNoDatabase}, // as database "x" does not exist (noDatabaseRe)
	{text: "violates foreign key constraint", kind: ErrConstraint},
	{text: "violates unique constraint", kind: ErrConstraint},
	{text: "violates not-null constraint", kind: ErrConstraint},
	{text: "violates check constraint", kind: ErrConstraint},
	{text: "violates exclusion constraint", kind: ErrConstraint},
	{text: "permission denied", kind: ErrPermission},
	{text: "must be owner of", kind: ErrPermission},
	{text: "must be superuser", kind: ErrPermission},
	{text: "syntax error at or near", kind: ErrSQLSyntax},
	{text: "syntax error at end of input", kind: ErrSQLSyntax},
	{text: "already exists", kind: ErrObjectExists},
	{text: "does not exist", kind: ErrUndefinedObject},
}

// Classify returns the sentinel for what a failed tool printed, or nil
// when a retry may help or the failure is not recognised. Only the error
// that stopped the tool counts: the first SQLSTATE of an error (notices
// and warnings, classes 00 to 02, are skipped), else the first error line
// (FirstErrorLine). A notice such as `table "x" does not exist, skipping`
// before a lost connection is not what failed.
func Classify(stderr string) error {
	for _, m := range sqlstateRe.FindAllStringSubmatch(stderr, -1) {
		state := m[1]
		if !strings.ContainsAny(state, "0123456789") {
			continue // a word such as "ERROR" or "FATAL"; every SQLSTATE has a digit
		}
		if strings.HasPrefix(state, "00") || strings.HasPrefix(state, "01") || strings.HasPrefix(state, "02") {
			continue
		}
		for _, p := range permanentPatterns {
			if p.text == "" && strings.HasPrefix(state, p.sqlstate) {
				return p.kind
			}
		}
		return nil
	}
	line := FirstErrorLine(stderr)
	for _, p := range permanentPatterns {
		if p.text == "" || !strings.Contains(line, p.text) {
			continue
		}
		if p.kind == ErrNoDatabase && !noDatabaseRe.MatchString(line) {
			continue
		}
		return p.kind
	}
	return nil
}

// noDatabaseRe is the server's "database "x" does not exist".
var noDatabaseRe = regexp.MustCompile(`database "[^"\n]*" does not exist`)
