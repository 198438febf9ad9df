package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInvalidArchive means an archive is not what pg_dump writes: it is
// refused before anything is restored from it.
var ErrInvalidArchive = errors.New("invalid archive")

// Plain archives are SQL run by psql, and psql runs more than SQL: a
// planted \! is a shell on the worker, \copy ... to program another, and
// \connect "host=..." hands the password to another server. Two layers
// keep them out:
//
//  1. psql itself refuses meta-commands: the stream psql reads starts with
//     \restrict and a key of our own, random per restore, and pg_dump's own
//     \restrict and \unrestrict lines are left out, so nothing in the
//     archive can leave restricted mode (psql 15.14+, 16.10+, 17.6+).
//  2. plainScanner reads the very bytes psql will read, the way psql 15
//     lexes them (src/fe_utils/psqlscan.l: quotes, quote continuation,
//     dollar quotes, comments, parentheses, BEGIN ATOMIC bodies, the
//     statements psql sends, COPY data), and refuses the archive before
//     psql starts at the first meta-command other than \connect to a plain
//     database name, or at anything that would make its reading and psql's
//     differ (see the refusals below).

// maxPlainLine bounds one line of a plain archive (PostgreSQL's own limit
// on a field is 1 GiB), so a forged archive cannot make the worker hold an
// unbounded line.
const maxPlainLine = 1 << 30

// checkPlainSQL fails with ErrInvalidArchive unless the plain archive r
// passes plainScanner as psql would read it after preparePlain: the same
// check a restore makes, without writing anything.
func checkPlainSQL(r io.Reader) error {
	return preparePlain(r, io.Discard, plainOptions{})
}

// plainOptions says how preparePlain rewrites an archive.
type plainOptions struct {
	// key, when set, is written as "\restrict key" on the first line.
	key string
	// filter, when set, rewrites or drops (keep false) a line before it is
	// checked and written: the check sees what psql will read.
	filter func(line string) (out string, keep bool)
	// noScan turns the scanner's refusals off, so tests can show that
	// psql's restricted mode holds on its own. Never set outside tests.
	noScan bool
}

// preparePlain copies the plain archive r to w as psql must read it: our
// \restrict first, pg_dump's own \restrict and \unrestrict lines (whole
// lines where a statement may start) left out, every line through
// o.filter, and every line written checked by plainScanner. It fails with
// ErrInvalidArchive at the first line the scanner refuses.
func preparePlain(r io.Reader, w io.Writer, o plainOptions) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if o.key != "" {
		fmt.Fprintf(bw, "\\restrict %s\n", o.key)
	}
	br := bufio.NewReaderSize(r, 256<<10)
	sc := newPlainScanner()
	var buf []byte
	for n := 1; ; n++ {
		line, nl, err := readPlainLine(br, &buf)
		if err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrInvalidArchive, n, err)
		}
		if line == nil && !nl {
			break
		}
		if o.filter != nil {
			out, keep := o.filter(string(line))
			if !keep {
				continue
			}
			line = []byte(out)
		}
		if sc.atStatementStart() && isRestrictLine(line) {
			continue // pg_dump's own: only our key may be in force
		}
		if err := sc.line(line); err != nil && !o.noScan {
			return fmt.Errorf("%w: line %d: %w", ErrInvalidArchive, n, err)
		}
		bw.Write(line)
		if nl {
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write the archive for psql: %w", err)
	}
	return nil
}

// readPlainLine returns the next line of br without its "\n" (a "\r"
// stays: psql keeps it too), and whether a "\n" ended it; nil and false at
// the end. It refuses NUL bytes, which psql's line reading would silently
// cut a line at, and lines over maxPlainLine.
func readPlainLine(br *bufio.Reader, buf *[]byte) ([]byte, bool, error) {
	*buf = (*buf)[:0]
	for {
		chunk, err := br.ReadSlice('\n')
		*buf = append(*buf, chunk...)
		if len(*buf) > maxPlainLine {
			return nil, false, fmt.Errorf("a line longer than %d bytes", maxPlainLine)
		}
		switch {
		case err == nil:
			line := (*buf)[:len(*buf)-1]
			return line, true, checkNUL(line)
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(*buf) == 0 {
				return nil, false, nil
			}
			return *buf, false, checkNUL(*buf)
		default:
			return nil, false, err
		}
	}
}

func checkNUL(line []byte) error {
	if bytes.IndexByte(line, 0) >= 0 {
		return errors.New("a NUL byte (psql would cut the line there)")
	}
	return nil
}

// isRestrictLine recognises the \restrict KEY and \unrestrict KEY lines
// pg_dump writes.
func isRestrictLine(line []byte) bool {
	s := strings.TrimRight(string(line), " \t\r")
	rest, ok := strings.CutPrefix(s, `\restrict`)
	if !ok {
		rest, ok = strings.CutPrefix(s, `\unrestrict`)
	}
	if !ok || (rest != "" && rest[0] != ' ') {
		return false
	}
	for _, c := range strings.TrimLeft(rest, " ") {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
