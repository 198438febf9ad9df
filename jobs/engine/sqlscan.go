package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInvalidArchive means an archive is not what pg_dump writes: it is
// refused before anything is restored from it.
var ErrInvalidArchive = errors.New("invalid archive")

// allowedMeta are the psql meta-commands pg_dump itself writes into plain
// dumps: \connect (with -C or several databases) and \restrict /
// \unrestrict (15.14+, 16.10+, 17.6+). \. ends COPY data and is handled
// with it. Any other, such as \! (a shell on the worker) or \copy ... to a
// program, is refused.
var allowedMeta = map[string]bool{"connect": true, "c": true, "restrict": true, "unrestrict": true}

// checkPlainSQL reads a plain archive the way psql lexes it (quotes,
// dollar quotes, comments, COPY data) and fails with ErrInvalidArchive at
// the first meta-command that pg_dump would not have written, or at a
// backquote in an allowed one (psql runs backquoted text as a shell
// command while it expands meta-command arguments).
func checkPlainSQL(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<30)
	var lx sqlLexer
	for n := 1; sc.Scan(); n++ {
		if err := lx.line(sc.Text()); err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrInvalidArchive, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArchive, err)
	}
	return nil
}

type lexState int

const (
	stNormal  lexState = iota
	stSingle           // '...'
	stEscaped          // E'...', where backslash escapes
	stDouble           // "..."
	stDollar           // $tag$...$tag$
	stBlock            // /* ... */, nested
	stCopy             // COPY ... FROM stdin data, until \.
)

type sqlLexer struct {
	state lexState
	tag   string // the dollar quote's delimiter
	depth int    // block comment nesting
}

func (lx *sqlLexer) line(s string) error {
	if lx.state == stCopy {
		if s == `\.` {
			lx.state = stNormal
		}
		return nil
	}
	if lx.state == stNormal && strings.HasPrefix(s, "COPY ") && strings.HasSuffix(s, " FROM stdin;") {
		lx.state = stCopy
		return nil
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch lx.state {
		case stNormal:
			switch {
			case ch == '-' && i+1 < len(s) && s[i+1] == '-':
				return nil // comment to the end of the line
			case ch == '/' && i+1 < len(s) && s[i+1] == '*':
				lx.state, lx.depth = stBlock, 1
				i++
			case ch == '\'':
				lx.state = stSingle
				if i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i == 1 || !isIdent(s[i-2])) {
					lx.state = stEscaped
				}
			case ch == '"':
				lx.state = stDouble
			case ch == '$' && (i == 0 || !isIdent(s[i-1])):
				if tag, ok := dollarTag(s[i:]); ok {
					lx.state, lx.tag = stDollar, tag
					i += len(tag) - 1
				}
			case ch == '\\':
				return checkMeta(s[i:])
			}
		case stSingle:
			if ch == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					i++
				} else {
					lx.state = stNormal
				}
			}
		case stEscaped:
			switch {
			case ch == '\\':
				i++
			case ch == '\'' && i+1 < len(s) && s[i+1] == '\'':
				i++
			case ch == '\'':
				lx.state = stNormal
			}
		case stDouble:
			if ch == '"' {
				lx.state = stNormal // a doubled "" reopens at once: same result
			}
		case stDollar:
			if ch == '$' && strings.HasPrefix(s[i:], lx.tag) {
				i += len(lx.tag) - 1
				lx.state = stNormal
			}
		case stBlock:
			switch {
			case ch == '/' && i+1 < len(s) && s[i+1] == '*':
				lx.depth++
				i++
			case ch == '*' && i+1 < len(s) && s[i+1] == '/':
				lx.depth--
				i++
				if lx.depth == 0 {
					lx.state = stNormal
				}
			}
		}
	}
	return nil
}

// checkMeta judges a meta-command: cmd is the rest of the line from the
// backslash; psql's arguments run to the end of the line.
func checkMeta(cmd string) error {
	name := cmd[1:]
	if end := strings.IndexAny(name, " \t\\"); end >= 0 {
		name = name[:end]
	}
	if !allowedMeta[name] {
		return fmt.Errorf(`psql meta-command \%s is not one pg_dump writes`, truncateString(name, 20))
	}
	if strings.ContainsRune(cmd, '`') {
		return fmt.Errorf(`psql meta-command \%s with a backquote (shell command)`, name)
	}
	return nil
}

// dollarTag returns the $tag$ delimiter s starts with, if any.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		if s[j] == '$' {
			return s[:j+1], true
		}
		if !isIdent(s[j]) || (j == 1 && s[j] >= '0' && s[j] <= '9') {
			return "", false
		}
	}
	return "", false
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
