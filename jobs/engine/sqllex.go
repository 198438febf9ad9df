package engine

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// lexState is where plainScanner is, named after psqlscan.l's states.
type lexState int

const (
	stNormal lexState = iota // INITIAL
	stXQ                     // '...' with standard_conforming_strings on
	stXE                     // E'...', and '...' with it off: backslash escapes
	stXUS                    // U&'...'
	stXB                     // B'...' and X'...': no doubled quotes, no escapes
	stXQS                    // after a closing quote: is the string continued?
	stXD                     // "..." and U&"..."
	stDollar                 // $tag$...$tag$
	stBlock                  // /* ... */, nested
	stCopy                   // COPY ... FROM stdin data, until \.
)

// plainScanner follows psql 15 through a plain archive, one line at a
// time as psql reads it (psql lexes each line without its newline, with
// the state carried over). Where it cannot be sure to agree with psql it
// refuses: pg_dump never writes those forms.
type plainScanner struct {
	st   lexState
	prev lexState // the string state an stXQS may continue
	tag  string   // the dollar quote's delimiter
	// depth is the block comment nesting.
	depth int
	// paren and begin are psql's paren_depth and begin_depth: a ";" ends
	// the statement psql sends only when both are 0.
	paren, begin int
	// idents and nIdents are psql's heuristic for CREATE [OR REPLACE]
	// FUNCTION|PROCEDURE ... BEGIN ATOMIC bodies.
	idents  [4]byte
	nIdents int
	// innerSemi: the last token was a ";" inside such a body; the server
	// may see a statement start there that psql does not.
	innerSemi bool
	stmt      stmtState
	// std is standard_conforming_strings as psql lexes the current line;
	// stdNext is what it will be from the next line (psql reads the
	// setting once per line). psql starts with it on: PGOPTIONS pins the
	// session's default (see psqlEnv).
	std, stdNext bool
	// stdSet: the archive has set standard_conforming_strings; a
	// ROLLBACK could then undo that behind the scanner's back.
	stdSet bool
	// copyNext: a COPY ... FROM stdin was sent; its data starts on the
	// next line.
	copyNext bool
}

func newPlainScanner() *plainScanner { return &plainScanner{std: true, stdNext: true} }

// atStatementStart reports whether a line would start a new statement
// with nothing pending: where pg_dump writes its meta-commands.
func (lx *plainScanner) atStatementStart() bool {
	return lx.st == stNormal && lx.stmt.n == 0 && lx.paren == 0 && lx.begin == 0
}

// line reads one line (without its "\n").
func (lx *plainScanner) line(s []byte) error {
	lx.std = lx.stdNext
	if lx.st == stCopy {
		if t := string(s); t == `\.` || t == "\\.\r" {
			lx.st = stNormal
		}
		return nil
	}
	for i := 0; i < len(s); {
		var err error
		i, err = lx.step(s, i)
		if err != nil {
			return err
		}
	}
	if lx.copyNext {
		lx.copyNext, lx.st = false, stCopy
	}
	return nil
}

// step lexes from s[i] in the current state and returns where to go on.
func (lx *plainScanner) step(s []byte, i int) (int, error) {
	switch lx.st {
	case stNormal:
		return lx.normal(s, i)
	case stXQ, stXUS:
		j := indexFrom(s, i, '\'')
		if j < 0 {
			return len(s), lx.mention(s[i:])
		}
		if j+1 < len(s) && s[j+1] == '\'' {
			return j + 2, lx.mention(s[i:j])
		}
		lx.prev, lx.st = lx.st, stXQS
		return j + 1, lx.mention(s[i:j])
	case stXE:
		for j := i; j < len(s); j++ {
			switch {
			case s[j] == '\\':
				j++ // a backslash at the end of a line escapes nothing: psql never sees the newline
			case s[j] == '\'' && j+1 < len(s) && s[j+1] == '\'':
				j++
			case s[j] == '\'':
				lx.prev, lx.st = stXE, stXQS
				return j + 1, lx.mention(s[i:j])
			}
		}
		return len(s), lx.mention(s[i:])
	case stXB:
		j := indexFrom(s, i, '\'')
		if j < 0 {
			return len(s), nil
		}
		lx.prev, lx.st = stXB, stXQS
		return j + 1, nil
	case stXQS:
		return lx.quoteStop(s, i), nil
	case stXD:
		j := indexFrom(s, i, '"')
		if j < 0 {
			return len(s), lx.mention(s[i:])
		}
		if j+1 < len(s) && s[j+1] == '"' {
			return j + 2, lx.mention(s[i:j])
		}
		lx.st = stNormal
		return j + 1, lx.mention(s[i:j])
	case stDollar:
		for j := i; j < len(s); j++ {
			if s[j] == '$' && strings.HasPrefix(string(s[j:]), lx.tag) {
				lx.st = stNormal
				return j + len(lx.tag), nil
			}
		}
		// A body is not searched for the settings' names: it runs only
		// when called, and what it may set at run time (like set_config
		// with a name built from pieces) no scanner can follow; psql's
		// restricted mode holds whatever psql then lexes differently.
		return len(s), nil
	case stBlock:
		for j := i; j+1 < len(s); j++ {
			switch {
			case s[j] == '/' && s[j+1] == '*':
				lx.depth++
				j++
			case s[j] == '*' && s[j+1] == '/':
				lx.depth--
				j++
				if lx.depth == 0 {
					lx.st = stNormal
					return j + 1, nil
				}
			}
		}
		return len(s), nil
	}
	return len(s), fmt.Errorf("scanner state %d", lx.st)
}

// quoteStop is psqlscan.l's xqs: after a closing quote, whitespace that
// holds a newline (within one line only "\r" can be one: psql never sees
// the "\n" between lines) followed by a quote continues the same string.
// At the very end of a line the question stays open into the next.
func (lx *plainScanner) quoteStop(s []byte, i int) int {
	if i == len(s) {
		return i
	}
	j, newline := i, false
	for j < len(s) {
		switch c := s[j]; {
		case c == ' ' || c == '\t' || c == '\f' || c == '\n':
			j++
		case c == '\r':
			newline = true
			j++
		case c == '-' && j+1 < len(s) && s[j+1] == '-':
			for j < len(s) && s[j] != '\r' && s[j] != '\n' {
				j++
			}
		case c == '\'' && newline:
			lx.st = lx.prev
			return j + 1
		default:
			lx.st = stNormal
			return i
		}
	}
	lx.st = stNormal
	return i
}

// normal lexes one token of psql's INITIAL state from s[i].
func (lx *plainScanner) normal(s []byte, i int) (int, error) {
	c := s[i]
	next := byte(0)
	if i+1 < len(s) {
		next = s[i+1]
	}
	switch {
	case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\n':
		return i + 1, nil
	case c == '-' && next == '-':
		// A comment ends at "\r" as well as at the end of the line.
		for i < len(s) && s[i] != '\r' {
			i++
		}
		return i, nil
	case c == '/' && next == '*':
		lx.st, lx.depth = stBlock, 1
		return i + 2, nil
	case c == '\'':
		lx.st = stXE
		if lx.std {
			lx.st = stXQ
		}
		return i + 1, lx.token(tokString, lx.text(s, i, '\''))
	case c == '"':
		lx.st = stXD
		return i + 1, lx.token(tokQuoted, lx.text(s, i, '"'))
	case c == '$':
		return lx.dollar(s, i)
	case isDigit(c) || c == '.' && isDigit(next):
		return lx.number(s, i)
	case isIdentStart(c):
		return lx.word(s, i)
	case c == '(':
		lx.paren++
	case c == ')':
		if lx.paren > 0 {
			lx.paren--
		}
	case c == ';':
		return lx.semicolon(s, i)
	case c == '\\':
		if next == ';' || next == ':' {
			return 0, fmt.Errorf(`psql's \%c (it joins statements or hides a colon from psql)`, next)
		}
		return len(s), lx.meta(s, i)
	case c == ':':
		return lx.colon(s, i)
	}
	return i + 1, lx.token(tokPunct, string(c))
}

// word lexes an identifier, or the prefix of a string E'x', B'x', X'x',
// N'x', U&'x' or identifier U&"x" (flex takes the longest match, so these
// count only where an identifier would start).
func (lx *plainScanner) word(s []byte, i int) (int, error) {
	c := s[i] | 0x20
	at := func(k int) byte {
		if i+k < len(s) {
			return s[i+k]
		}
		return 0
	}
	switch {
	case c == 'e' && at(1) == '\'':
		lx.st = stXE
		return i + 2, lx.token(tokString, "")
	case (c == 'b' || c == 'x') && at(1) == '\'':
		lx.st = stXB
		return i + 2, lx.token(tokString, "")
	case c == 'n' && at(1) == '\'':
		return i + 1, nil // psql eats the N alone; the quote follows
	case c == 'u' && at(1) == '&':
		switch at(2) {
		case '\'':
			lx.st = stXUS
			return i + 3, lx.token(tokString, "")
		case '"':
			lx.st = stXD
			return i + 3, lx.token(tokQuoted, "")
		}
		return 0, errors.New(`"U&" without a quote after it`)
	}
	j := i + 1
	for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j]) || s[j] == '$') {
		j++
	}
	w := s[i:j]
	lx.beginHeuristic(w)
	// Most words are only counted; their text is made only where it may
	// matter (lower-casing every identifier of a large archive costs).
	text := ""
	if lx.stmt.n < len(lx.stmt.first) || lx.stmt.copy != copyNone || len(w) == len("copy") ||
		len(w) == len("client_encoding") || len(w) == len("standard_conforming_strings") {
		text = strings.ToLower(string(w))
	}
	return j, lx.token(tokIdent, text)
}

// beginHeuristic is psqlscan.l's identifier rule: inside CREATE [OR
// REPLACE] FUNCTION|PROCEDURE, BEGIN ... END (and CASE ... END within it)
// keep a ";" from ending the statement.
func (lx *plainScanner) beginHeuristic(w []byte) {
	if lx.nIdents == 0 {
		lx.idents = [4]byte{}
	}
	is := func(k string) bool { return len(w) == len(k) && strings.EqualFold(string(w), k) }
	if is("create") || is("function") || is("procedure") || is("or") || is("replace") {
		if lx.nIdents < len(lx.idents) {
			lx.idents[lx.nIdents] = w[0] | 0x20
		}
	}
	lx.nIdents++
	id := lx.idents
	if id[0] != 'c' || lx.paren != 0 ||
		!(id[1] == 'f' || id[1] == 'p' || id[1] == 'o' && id[2] == 'r' && (id[3] == 'f' || id[3] == 'p')) {
		return
	}
	switch {
	case is("begin"):
		lx.begin++
	case is("case"):
		if lx.begin >= 1 {
			lx.begin++
		}
	case is("end"):
		if lx.begin > 0 {
			lx.begin--
		}
	}
}

// number lexes a numeric literal. What psql 15 makes of digits followed
// by letters ("trailing junk", 1e, 0x1F, 1_000) differs between releases
// and decides whether a following $ opens a dollar quote, so it is
// refused; pg_dump never writes it.
func (lx *plainScanner) number(s []byte, i int) (int, error) {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j+1 < len(s) && s[j] == '.' && s[j+1] == '.' {
		return j, lx.token(tokNumber, "") // 1..10
	}
	if j < len(s) && s[j] == '.' {
		j++
		for j < len(s) && isDigit(s[j]) {
			j++
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			for j = k; j < len(s) && isDigit(s[j]); j++ {
			}
		}
	}
	if j < len(s) && isIdentStart(s[j]) {
		return 0, fmt.Errorf("a number with letters after it (%q)", truncateString(string(s[i:min(len(s), j+8)]), 16))
	}
	return j, lx.token(tokNumber, "")
}

// dollar lexes what starts with "$": a dollar quote's delimiter, a
// parameter ($1), or a lone "$".
func (lx *plainScanner) dollar(s []byte, i int) (int, error) {
	j := i + 1
	if j < len(s) && isDigit(s[j]) {
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j < len(s) && (isIdentStart(s[j]) || s[j] == '$') {
			return 0, errors.New("a parameter with letters after it")
		}
		return j, lx.token(tokPunct, "$")
	}
	if j < len(s) && isIdentStart(s[j]) {
		for j++; j < len(s) && (isIdentStart(s[j]) || isDigit(s[j])); j++ {
		}
	}
	if j < len(s) && s[j] == '$' {
		lx.st, lx.tag = stDollar, string(s[i:j+1])
		return j + 1, lx.token(tokString, "")
	}
	return i + 1, lx.token(tokPunct, "$") // psql's dolqfailed: only the $ is taken
}

// colon lexes ":", "::" and psql's variable references. A plain :NAME is
// replaced by the variable's value and lexed again, so a reference to a
// variable psql defines is refused; quoted ones (:'NAME', :"NAME") are
// substituted already quoted.
func (lx *plainScanner) colon(s []byte, i int) (int, error) {
	if i+1 < len(s) && s[i+1] == ':' {
		return i + 2, lx.token(tokPunct, "::")
	}
	j := i + 1
	for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j])) {
		j++
	}
	if name := string(s[i+1 : j]); psqlVariables[name] {
		return 0, fmt.Errorf("a reference to psql's variable :%s", name)
	}
	return i + 1, lx.token(tokPunct, ":")
}

// psqlVariables are the variables psql 15 defines without \set (which is
// a meta-command, refused): a plain reference to one is substituted.
var psqlVariables = map[string]bool{}

func init() {
	for _, v := range strings.Fields(`AUTOCOMMIT COMP_KEYWORD_CASE DBNAME ECHO ECHO_HIDDEN ENCODING ERROR
		FETCH_COUNT HIDE_TABLEAM HIDE_TOAST_COMPRESSION HISTCONTROL HISTFILE HISTSIZE HOST IGNOREEOF
		LASTOID LAST_ERROR_MESSAGE LAST_ERROR_SQLSTATE ON_ERROR_ROLLBACK ON_ERROR_STOP PORT PROMPT1
		PROMPT2 PROMPT3 QUIET ROW_COUNT SERVER_VERSION_NAME SERVER_VERSION_NUM SHELL_ERROR
		SHELL_EXIT_CODE SHOW_ALL_RESULTS SHOW_CONTEXT SINGLELINE SINGLESTEP SQLSTATE USER VERBOSITY
		VERSION VERSION_NAME VERSION_NUM`) {
		psqlVariables[v] = true
	}
}

// semicolon: at paren and begin depth 0 psql sends the statement.
func (lx *plainScanner) semicolon(s []byte, i int) (int, error) {
	if lx.paren != 0 || lx.begin != 0 {
		err := lx.token(tokPunct, ";")
		lx.innerSemi = lx.paren == 0
		return i + 1, err
	}
	lx.nIdents = 0
	stmt := lx.stmt
	lx.stmt = stmtState{}
	if err := lx.sent(&stmt); err != nil {
		return 0, err
	}
	if stmt.copy == copyDone {
		// psql reads the data from the next line, and lexes the rest of
		// this one only after it: allow nothing there.
		if rest := strings.Trim(string(s[i+1:]), " \t\r\f"); rest != "" {
			return 0, errors.New("text after COPY ... FROM stdin; on its line")
		}
		lx.copyNext = true
		return len(s), nil
	}
	return i + 1, nil
}

// meta judges a meta-command at s[i] ("\" then a name; psql takes the
// rest of the line as its arguments). Only \connect or \c to a plain
// database name, alone at the start of a statement, passes; psql's
// restricted mode refuses even that.
func (lx *plainScanner) meta(s []byte, i int) error {
	cmd := string(s[i+1:])
	name := cmd
	if end := strings.IndexFunc(cmd, func(r rune) bool { return !(r < 0x80 && (isIdentStart(byte(r)) || isDigit(byte(r)))) }); end >= 0 {
		name = cmd[:end]
	}
	if name == "" && cmd != "" {
		name = cmd[:1]
	}
	if name != "connect" && name != "c" {
		return fmt.Errorf(`psql meta-command \%s is not one pg_dump writes`, truncateString(name, 20))
	}
	if strings.TrimLeft(string(s[:i]), " \t\r\f") != "" || !lx.atStatementStart() {
		return fmt.Errorf(`psql meta-command \%s inside a statement`, name)
	}
	arg := strings.Trim(cmd[len(name):], " \t\r\f")
	if !isPlainDatabaseName(arg) || !strings.ContainsAny(cmd[len(name):min(len(cmd), len(name)+1)], " \t") {
		return fmt.Errorf(`psql \%s to %q: only a plain database name is allowed (no connection string, URI, host, user or port)`,
			name, truncateString(arg, 40))
	}
	lx.std, lx.stdNext = true, true // a new session starts with PGOPTIONS' setting
	return nil
}

// isPlainDatabaseName accepts the names pg_dump writes unquoted after
// \connect: nothing libpq or psql could read as anything but a name.
func isPlainDatabaseName(s string) bool {
	if s == "" || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isIdentStart(c) && c < 0x80 || isDigit(c) || c == '.' || c == '$') {
			return false
		}
	}
	return true
}

// mention refuses a string or quoted identifier that names a setting
// deciding how psql lexes (SELECT set_config('standard_conforming_strings',
// ...), SET "client_encoding" ...): the scanner could not follow that
// change. pg_dump only ever SETs them, by their plain names.
func (lx *plainScanner) mention(text []byte) error {
	if len(text) < len("client_encoding") || bytes.IndexByte(text, '_') < 0 {
		return nil
	}
	t := strings.ToLower(string(text))
	for _, name := range lexSettings {
		if strings.Contains(t, name) {
			return fmt.Errorf("%s named inside a string or identifier (psql's lexing depends on it)", name)
		}
	}
	return nil
}

// lexSettings are the settings psql's lexing depends on.
var lexSettings = []string{"standard_conforming_strings", "client_encoding"}

func indexFrom(s []byte, i int, c byte) int {
	for j := i; j < len(s); j++ {
		if s[j] == c {
			return j
		}
	}
	return -1
}

// text is quoted(s, i, q) where a statement's tokens are still read
// (its first few, or a COPY's), "" elsewhere: most literals are data.
func (lx *plainScanner) text(s []byte, i int, q byte) string {
	if lx.stmt.n < len(lx.stmt.first) || lx.stmt.copy != copyNone {
		return quoted(s, i, q)
	}
	return ""
}

// quoted returns the text of the quoted token at s[i] (quote q, doubled
// inside) when it ends on the same line, "" otherwise: enough to read a
// COPY's table name or a SET's value, which are never longer.
func quoted(s []byte, i int, q byte) string {
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				b.WriteByte(q)
				j++
				continue
			}
			return b.String()
		}
		b.WriteByte(s[j])
	}
	return ""
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
