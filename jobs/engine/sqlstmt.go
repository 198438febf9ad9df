package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// tokKind is what plainScanner keeps of a token.
type tokKind int

const (
	tokIdent  tokKind = iota // lower-cased
	tokQuoted                // "..." (its text when it ends on its line)
	tokString                // any string literal (its text for a one-line '...')
	tokNumber
	tokPunct
)

type token struct {
	kind tokKind
	text string
}

// copyStep is how far a statement has matched "COPY name [(cols)] FROM
// stdin", the only form of COPY pg_dump writes into a plain archive.
type copyStep int

const (
	copyNone copyStep = iota
	copyName
	copyAfterName
	copyCol
	copyColSep
	copyAfterCols
	copyFrom
	copyDone
)

// stmtState is what plainScanner knows of the statement psql has not sent
// yet.
type stmtState struct {
	n     int      // tokens so far
	first [8]token // the first of them
	// parts counts the dotted parts of a COPY's table name.
	parts int
	copy  copyStep
	// mention: a lexSettings name appears as a bare word.
	mention bool
}

// token records one token of the pending statement.
func (lx *plainScanner) token(kind tokKind, text string) error {
	st := &lx.stmt
	if lx.innerSemi && kind == tokIdent && text == "copy" {
		// psql thinks it is inside a BEGIN ATOMIC body and sends nothing,
		// but the server may see a COPY here and ask for data.
		return errors.New("COPY after a ; that psql does not send on its own")
	}
	lx.innerSemi = false
	if st.n < len(st.first) {
		st.first[st.n] = token{kind, text}
	}
	st.n++
	if kind == tokIdent && slices.Contains(lexSettings, text) {
		st.mention = true
	}
	if st.n == 1 && kind == tokIdent && text == "copy" {
		st.copy = copyName
		return nil
	}
	if st.copy == copyNone {
		return nil
	}
	if !st.copyToken(kind, text) {
		return errors.New("a COPY statement pg_dump does not write (only COPY table [(columns)] FROM stdin;)")
	}
	return nil
}

// copyToken advances the COPY matcher, false when the statement leaves
// the one form allowed.
func (st *stmtState) copyToken(kind tokKind, text string) bool {
	name := kind == tokIdent || kind == tokQuoted && text != ""
	switch {
	case st.copy == copyName && name:
		st.copy, st.parts = copyAfterName, st.parts+1
	case st.copy == copyAfterName && kind == tokPunct && text == "." && st.parts < 3:
		st.copy = copyName
	case st.copy == copyAfterName && kind == tokPunct && text == "(":
		st.copy = copyCol
	case (st.copy == copyAfterName || st.copy == copyAfterCols) && kind == tokIdent && text == "from":
		st.copy = copyFrom
	case st.copy == copyCol && name:
		st.copy = copyColSep
	case st.copy == copyColSep && kind == tokPunct && text == ",":
		st.copy = copyCol
	case st.copy == copyColSep && kind == tokPunct && text == ")":
		st.copy = copyAfterCols
	case st.copy == copyFrom && kind == tokIdent && text == "stdin":
		st.copy = copyDone
	default:
		return false
	}
	return true
}

// sent judges a statement psql sends to the server (it reached a ";" at
// depth 0).
func (lx *plainScanner) sent(st *stmtState) error {
	if st.copy != copyNone && st.copy != copyDone {
		return errors.New("an incomplete COPY statement")
	}
	n := min(st.n, len(st.first))
	toks := st.first[:n]
	word := func(k int) string {
		if k < len(toks) && toks[k].kind == tokIdent {
			return toks[k].text
		}
		return ""
	}
	switch word(0) {
	case "set":
		return lx.sentSet(st, toks)
	case "reset":
		if st.n == 2 && (word(1) == "all" || slices.Contains(lexSettings, word(1))) {
			lx.stdNext = true // the session's default, pinned by PGOPTIONS
			return nil
		}
	case "discard":
		lx.stdNext = true
	case "rollback", "abort", "prepare":
		if lx.stdSet {
			return fmt.Errorf("%s after SET standard_conforming_strings (it may undo the setting)", strings.ToUpper(word(0)))
		}
	case "alter":
		switch word(1) {
		case "role", "user", "database", "group":
			return nil // settings of other sessions: psql's is not changed
		}
	}
	if st.mention {
		return errors.New("standard_conforming_strings or client_encoding outside a plain SET")
	}
	return nil
}

// sentSet follows SET [SESSION] standard_conforming_strings and
// client_encoding (and SET NAMES): the forms pg_dump writes, with values
// whose lexing psql can follow. psql reads the new setting from the next
// line on.
func (lx *plainScanner) sentSet(st *stmtState, toks []token) error {
	k := 1
	// SQL's LOCAL keyword, spelled in upper case as SQL is written (the
	// lower-case word names a store backend elsewhere in this code base).
	const local = "LOCAL"
	if k < len(toks) && toks[k].kind == tokIdent && (toks[k].text == "session" || strings.EqualFold(toks[k].text, local)) {
		if strings.EqualFold(toks[k].text, local) && st.mention {
			return errors.New("SET LOCAL of standard_conforming_strings or client_encoding")
		}
		k++
	}
	if k >= len(toks) || toks[k].kind != tokIdent {
		return lx.sentOther(st)
	}
	name := toks[k].text
	if name != "names" && !slices.Contains(lexSettings, name) {
		return lx.sentOther(st)
	}
	v := k + 1
	if name != "names" {
		if v >= len(toks) || !(toks[v].kind == tokPunct && toks[v].text == "=" || toks[v].kind == tokIdent && toks[v].text == "to") {
			return fmt.Errorf("SET %s in a form pg_dump does not write", name)
		}
		v++
	}
	if st.n != v+1 || toks[v].kind != tokIdent && toks[v].kind != tokString {
		return fmt.Errorf("SET %s in a form pg_dump does not write", name)
	}
	value := strings.ToLower(toks[v].text)
	if name == "standard_conforming_strings" {
		switch value {
		case "on", "true", "default":
			lx.stdNext = true
		case "off", "false":
			lx.stdNext = false
		default:
			return fmt.Errorf("SET standard_conforming_strings to %q", truncateString(value, 20))
		}
		lx.stdSet = true
		return nil
	}
	if value != "default" && !safeEncodings[strings.ToUpper(value)] {
		// psql lexes client encodings such as SJIS or BIG5 with their
		// multi-byte characters, whose second byte may be a backslash
		// or quote to this scanner.
		return fmt.Errorf("client encoding %q, which psql lexes differently", truncateString(value, 20))
	}
	return nil
}

func (lx *plainScanner) sentOther(st *stmtState) error {
	if st.mention {
		return errors.New("standard_conforming_strings or client_encoding outside a plain SET")
	}
	return nil
}

// safeEncodings are the server encodings, the ones pg_dump writes in SET
// client_encoding: in them no byte of a multi-byte character is ASCII,
// so psql lexes them as this scanner does.
var safeEncodings = map[string]bool{}

func init() {
	for _, e := range strings.Fields(`SQL_ASCII UTF8 EUC_JP EUC_CN EUC_KR EUC_TW EUC_JIS_2004 MULE_INTERNAL
		LATIN1 LATIN2 LATIN3 LATIN4 LATIN5 LATIN6 LATIN7 LATIN8 LATIN9 LATIN10 WIN1250 WIN1251
		WIN1252 WIN1253 WIN1254 WIN1255 WIN1256 WIN1257 WIN1258 WIN866 WIN874 KOI8R KOI8U
		ISO_8859_5 ISO_8859_6 ISO_8859_7 ISO_8859_8`) {
		safeEncodings[e] = true
	}
}
