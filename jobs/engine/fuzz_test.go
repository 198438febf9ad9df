package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/store"
)

// FuzzValidateName checks the property the rest of the system relies on:
// an accepted name can never produce a key outside the backup prefix.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"nightly", "a.b-c_d", "../x", "a/b", "", ".x", "a\x00b", strings.Repeat("z", 129), "ü", "..", "x..y", "-", "_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, err := ParseName(name)
		if err != nil {
			return
		}
		if len(name) == 0 || len(name) > MaxNameLen || name[0] == '.' || strings.ContainsAny(name, "/\\\x00 ") {
			t.Fatalf("ParseName accepted %q", name)
		}
		for _, f := range Formats {
			for _, key := range []string{ArchiveKey(n, f, Codec{}), ArchiveKey(n, f, DefaultCodec), ManifestKey(n)} {
				if err := store.ValidateKey(key); err != nil {
					t.Fatalf("accepted name %q gives invalid key %q: %v", name, key, err)
				}
				if !strings.HasPrefix(key, Prefix) || strings.Count(key, "/") != 1 {
					t.Fatalf("accepted name %q escapes the prefix: %q", name, key)
				}
			}
		}
	})
}

// FuzzPlainScanner feeds the plain-archive scanner arbitrary SQL. It must
// never panic, and what it accepts must, once prepared for psql, read
// exactly as the input after our \restrict line (nothing else rewritten)
// and be accepted again: the check is a function of the bytes psql reads.
func FuzzPlainScanner(f *testing.F) {
	for _, s := range []string{
		"SELECT 1;\n", "\\restrict k\nSET standard_conforming_strings = off;\nSELECT 'a\\'';\n\\unrestrict k\n",
		"COPY t (a) FROM stdin;\nx\n\\.\n", "COPY t FROM STDIN;\nit's\n\\.\n\\! id\n", "SELECT 1 AS\nCOPY FROM stdin;\n\\! id\n",
		"SELECT E'a'\r'b\\'; \\! id';\n", "CREATE FUNCTION f() BEGIN ATOMIC SELECT 1 AS begin; END;\nCOPY t FROM stdin;\n",
		"SELECT $a$ x $a$, a$$b, 1e5$$;\n", "/* /* */ \\! */\n", "\\connect db\n", "\\c \"host=x\"\n", "SELECT :VERSION, :'x';\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		var out strings.Builder
		err := preparePlain(strings.NewReader(sql), &out, plainOptions{key: "fuzzkey"})
		if err != nil {
			if !errors.Is(err, ErrInvalidArchive) {
				t.Fatalf("refusal %v is not ErrInvalidArchive", err)
			}
			return
		}
		got, ok := strings.CutPrefix(out.String(), "\\restrict fuzzkey\n")
		if !ok {
			t.Fatalf("prepared archive does not start with our key: %q", out.String())
		}
		if !onlyRestrictLinesDropped(sql, got) {
			t.Fatalf("prepared %q from %q", got, sql)
		}
		if err := checkPlainSQL(strings.NewReader(out.String())); err != nil {
			t.Fatalf("accepted %q, but not once prepared: %v", sql, err)
		}
	})
}

// onlyRestrictLinesDropped reports whether got is in's lines with none
// left out but \restrict and \unrestrict lines (preparePlain drops those
// where a statement may start, and keeps them inside strings or data).
func onlyRestrictLinesDropped(in, got string) bool {
	lines := func(s string) []string {
		return slices.DeleteFunc(strings.SplitAfter(s, "\n"), func(l string) bool { return l == "" })
	}
	want, have := lines(in), lines(got)
	j := 0
	for _, l := range want {
		if j < len(have) && have[j] == l {
			j++
			continue
		}
		if !isRestrictLine([]byte(strings.TrimSuffix(l, "\n"))) {
			return false
		}
	}
	return j == len(have)
}
