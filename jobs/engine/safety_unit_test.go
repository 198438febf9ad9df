package engine

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

func TestCheckPlainSQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sql  string
		ok   bool
	}{
		{"pg_dump's own", "\\restrict abc123\nSET x = 1;\nSET standard_conforming_strings = on;\nSET client_encoding = 'UTF8';\n" +
			"COMMENT ON TABLE t IS 'C:\\';\nCOPY public.t (a, b) FROM stdin;\n\\N\tx\n\\\\!\t2\n\\restrict x\n\\.\nSELECT 1;\n\\unrestrict abc123\n", true},
		{"plain connect", "SELECT 1;\n\\connect shop\n\\c other_db\n", true},
		{"shell escape", "SELECT 1;\n\\! touch /tmp/pwned\n", false},
		{"shell escape mid-line", "SELECT 1; \\! id\n", false},
		{"copy to a program", "\\copy t to program 'id'\n", false},
		{"include a file", "\\i /etc/passwd\n", false},
		{"backquote in connect", "\\connect `id`\n", false},
		{"connect to a host", "\\connect \"host=elsewhere dbname=x\"\n", false},
		{"connect with a conninfo", "\\connect -reuse-previous=on \"dbname='db'\"\n", false},
		{"connect to a URI", "\\c postgresql://evil/db\n", false},
		{"connect with user and host", "\\c db someone evil.example 5432\n", false},
		{"connect inside a statement", "SELECT\n\\c db\n1;\n", false},
		{"restrict mid-statement", "SELECT\n\\unrestrict abc\n;\n", false},
		{"semicolon escape", "SELECT 1\\; COPY t FROM stdin;\n", false},
		{"backslash in a string", "SELECT 'a\\! b';\n", true},
		{"backslash in a multi-line string", "SELECT 'line one\n\\! not a command';\n", true},
		{"escape string", "SELECT E'it\\'s \\\\! fine';\n", true},
		{"escape string then command", "SELECT E'x\\'';\n\\! id\n", false},
		{"escape string ending in a backslash", "SELECT E'x\\\n';\n\\! id\n", false},
		{"dollar quoted body", "CREATE FUNCTION f() RETURNS text AS $fn$\n\\! inside a body\n$fn$ LANGUAGE sql;\n", true},
		{"after the dollar quote ends", "SELECT $$x$$;\n\\! id\n", false},
		{"dollar inside an identifier", "SELECT 1 AS a$$;\n\\! id\n-- $$\n", false},
		{"number with letters", "SELECT 12a$$ x $$;\n", false},
		{"quoted identifier", "CREATE TABLE \"a\\!b\" (x int);\n", true},
		{"line comment", "-- \\! a comment\nSELECT 1;\n", true},
		{"carriage return ends a comment", "-- c\r\\! id\nSELECT 1;\n", false},
		{"block comment", "/* \\! a /* nested */ comment\n\\! still comment */ SELECT 1;\n", true},
		{"after a block comment", "/* c */ \\! id\n", false},
		{"copy data is not SQL", "COPY public.t (a) FROM stdin;\n\\! looks like one\n\\.\n", true},
		{"copy data ends at a CRLF marker", "COPY public.t (a) FROM stdin;\nx\n\\.\r\n\\! id\n", false},
		{"after copy data", "COPY public.t (a) FROM stdin;\nx\n\\.\n\\! id\n", false},
		{"copy in upper case stdin", "COPY t FROM STDIN;\nx\n\\.\nSELECT 1;\n", true},
		{"copy stdin then a shell after its data", "COPY t FROM STDIN;\nx\n\\.\n\\! id\n", false},
		{"copy split over lines", "COPY t\n  FROM stdin;\n\\! data, not a command\n\\.\n", true},
		{"copy trick over two lines", "SELECT 1 AS\nCOPY FROM stdin;\n\\! id\n\\.\n", false},
		{"copy inside parentheses", "SELECT (\n;COPY t FROM stdin;\n\\! id\n", false},
		{"copy with options", "COPY t FROM stdin WITH (FORMAT csv);\n", false},
		{"copy from a program", "COPY t FROM PROGRAM 'id';\n", false},
		{"copy to stdout", "COPY t TO stdout;\n", false},
		{"text after copy", "COPY t FROM stdin; SELECT 1;\nx\n\\.\n", false},
		{"copy hidden in a begin atomic body", "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS begin; END;\n" +
			"COPY t FROM stdin;\nSELECT 1 AS end;\n", false},
		{"begin atomic body", "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT 1;\n SELECT CASE WHEN true THEN 2 END;\nEND;\nSELECT 1;\n", true},
		{"standard_conforming_strings off", "SET standard_conforming_strings = off;\nSELECT 'a\\'; \\! id';\n", true},
		{"standard_conforming_strings off trick", "SET standard_conforming_strings = off;\nSELECT 'a\\''; \\! id; --';\n", false},
		{"the same with it on", "SELECT 'a\\''; \\! id; --';\n", true},
		{"off then on", "SET standard_conforming_strings = off;\nSET standard_conforming_strings = on;\nSELECT 'a\\'; \\! id';\n", false},
		{"off applies from the next line", "SET standard_conforming_strings = off; SELECT 'a\\'; \\! id';\n", false},
		{"set_config of the setting", "SELECT set_config('standard_conforming_strings', 'off', false);\n", false},
		{"function body reading the encoding", "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$SELECT current_setting('client_encoding')$$;\n", true},
		{"set local", "SET LOCAL standard_conforming_strings = off;\n", false},
		{"rollback after a set", "SET standard_conforming_strings = off;\nROLLBACK;\n", false},
		{"odd value", "SET standard_conforming_strings = 'of';\n", false},
		{"unsafe client encoding", "SET client_encoding = 'SJIS';\n", false},
		{"role setting", "ALTER ROLE r SET client_encoding TO 'SJIS';\n", true},
		{"quote continuation across a CR", "SELECT E'a'\r'b\\'; \\! id';\n", true},
		{"no quote continuation without a newline", "SELECT E'a' 'b\\'; \\! id';\n", false},
		{"psql variable", "SELECT :VERSION;\n", false},
		{"not a psql variable", "SELECT a[1:n] FROM t;\nSELECT 1::int;\n", true},
		{"NUL byte", "SELECT 1;\x00\\! id\n", false},
		{"U& string", "SELECT U&'d\\0061t\\+000061';\n", true},
		{"bit string", "SELECT B'01', X'1F';\n", true},
	}
	for _, tt := range tests {
		err := checkPlainSQL(strings.NewReader(tt.sql))
		if tt.ok && err != nil {
			t.Errorf("%s: refused: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidArchive) {
			t.Errorf("%s: err = %v, want ErrInvalidArchive", tt.name, err)
		}
	}
}

// TestPreparePlainPutsOurKeyInForce: psql reads our \restrict first and
// none of pg_dump's, while a line that only looks like one in COPY data
// or inside a string stays as it is.
func TestPreparePlainPutsOurKeyInForce(t *testing.T) {
	t.Parallel()
	in := "\\restrict theirs\nSELECT 'x\n\\unrestrict theirs\n';\nCOPY t (a) FROM stdin;\n\\restrict data\n\\.\n\\unrestrict theirs\n"
	var out strings.Builder
	if err := preparePlain(strings.NewReader(in), &out, plainOptions{key: "ours"}); err != nil {
		t.Fatal(err)
	}
	want := "\\restrict ours\nSELECT 'x\n\\unrestrict theirs\n';\nCOPY t (a) FROM stdin;\n\\restrict data\n\\.\n"
	if out.String() != want {
		t.Fatalf("prepared:\n%q\nwant:\n%q", out.String(), want)
	}
	// The scanner sees the lines as filtered: a meta-command that only
	// filtering reveals is refused.
	filter := func(l string) (string, bool) { return strings.TrimPrefix(l, "CREATE ROLE x; "), true }
	err := preparePlain(strings.NewReader("CREATE ROLE x; \\! id\n"), &out, plainOptions{filter: filter})
	if !errors.Is(err, ErrInvalidArchive) {
		t.Fatalf("meta-command revealed by the filter: err = %v, want ErrInvalidArchive", err)
	}
}

func TestHasRestrict(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{"15.19": true, "15.14": true, "15.13": false, "16.9": false, "16.10": true,
		"17.6": true, "13.22": true, "12.22": false, "18": true, "18.1": true, "15": false} {
		major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
		if got := hasRestrict(pgtool.Tools{Major: major, Version: v}); got != want {
			t.Errorf("hasRestrict(%s) = %v, want %v", v, got, want)
		}
	}
}

func TestCopyRowCounts(t *testing.T) {
	t.Parallel()
	sql := "SET x = 1;\nCOPY public.accounts (id, name) FROM stdin;\n1\ta\n2\tb\\nc\n\\.\n" +
		"COPY \"My Schema\".\"odd \"\"table\"\"\" (x) FROM stdin;\n\\N\n\\.\n" +
		"COPY public.empty (x) FROM stdin;\n\\.\n"
	got, err := copyRowCounts(strings.NewReader(sql))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"public.accounts": 2, `My Schema.odd "table"`: 1, "public.empty": 0}
	if diff := compareCounts(want, got); diff != "" || len(got) != len(want) {
		t.Fatalf("copyRowCounts = %v, want %v (%s)", got, want, diff)
	}
	if d := compareCounts(map[string]int64{"public.accounts": 3, "public.gone": 5}, got); !strings.Contains(d, "public.accounts has 2 rows, manifest says 3") || !strings.Contains(d, "public.gone has 0 rows") {
		t.Fatalf("compareCounts = %q", d)
	}
}

func TestSignedManifests(t *testing.T) {
	t.Parallel()
	oldKey, newKey := []byte("old-key-0123456789abcdef0123456789"), []byte("new-key-0123456789abcdef0123456789")
	m := &Manifest{Name: MustParseName("n"), Database: "db", Format: FormatCustom, ArchiveKey: ArchiveKey(MustParseName("n"), FormatCustom, Codec{}),
		SizeBytes: 1 << 40, SHA256: strings.Repeat("a", 64), StartedAt: time.Now(), FinishedAt: time.Now(),
		RowCounts: map[string]int64{"public.t": 9007199254740993},
		ChunkSums: ChunkSums{ChunkSize: DefaultChunkSize, ChunkSHA256: []string{strings.Repeat("c", 64)}, RawSizeBytes: 1 << 41}}
	if err := NewSigner(oldKey).sign(m); err != nil {
		t.Fatal(err)
	}
	raw, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := NewSigner(oldKey).check(MustParseName("n"), raw); err != nil {
		t.Fatalf("signed by this key: %v", err)
	}
	if err := NewSigner(newKey, oldKey).check(MustParseName("n"), raw); err != nil {
		t.Fatalf("signed by an old key still accepted: %v", err)
	}
	if err := NewSigner(newKey).check(MustParseName("n"), raw); !errors.Is(err, ErrSignature) {
		t.Fatalf("another key: err = %v, want ErrSignature", err)
	}
	var obj map[string]any
	_ = json.Unmarshal(raw, &obj)
	for field, value := range map[string]any{"database": "other", "sha256": strings.Repeat("b", 64), "extra": true,
		"chunk_sha256": []string{strings.Repeat("d", 64)}, "chunk_size": 1 << 20, "raw_size_bytes": 1} {
		tampered := map[string]any{}
		for k, v := range obj {
			tampered[k] = v
		}
		tampered[field] = value
		b, _ := json.Marshal(tampered)
		if err := NewSigner(oldKey).check(MustParseName("n"), b); !errors.Is(err, ErrSignature) {
			t.Errorf("changed %s: err = %v, want ErrSignature", field, err)
		}
	}
	delete(obj, "signature")
	unsigned, _ := json.Marshal(obj)
	if err := NewSigner(oldKey).check(MustParseName("n"), unsigned); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("unsigned: err = %v, want ErrSignature saying not signed", err)
	}
	if KeyFingerprint(oldKey) == KeyFingerprint(newKey) || strings.Contains(KeyFingerprint(oldKey), "old-key") {
		t.Fatal("fingerprints must differ per key and not reveal it")
	}
}

func TestExtractTarRefusesSparseAndOversize(t *testing.T) {
	t.Parallel()
	build := func(hdrs ...*tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hdrs {
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			_, _ = tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
		_ = tw.Close()
		return b.Bytes()
	}
	// archive/tar writes no sparse entries, so patch an old GNU one by hand:
	// type 'S', 4 stored bytes that expand to 1 GiB.
	sparse := build(&tar.Header{Name: "s.dat", Typeflag: tar.TypeReg, Size: 4, Mode: 0o600, Format: tar.FormatGNU})
	sparse[156] = tar.TypeGNUSparse
	copy(sparse[483:495], fmt.Sprintf("%011o\x00", 1<<30))
	copy(sparse[148:156], "        ")
	sum := 0
	for _, c := range sparse[:512] {
		sum += int(c)
	}
	copy(sparse[148:156], fmt.Sprintf("%06o\x00 ", sum))
	if err := extractTar(bytes.NewReader(sparse), t.TempDir(), -1); !errors.Is(err, ErrInvalidArchive) {
		t.Errorf("sparse entry: err = %v, want ErrInvalidArchive", err)
	}
	two := build(&tar.Header{Name: "a.dat", Typeflag: tar.TypeReg, Size: 600, Mode: 0o600},
		&tar.Header{Name: "b.dat", Typeflag: tar.TypeReg, Size: 600, Mode: 0o600})
	if err := extractTar(bytes.NewReader(two), t.TempDir(), 1000); !errors.Is(err, ErrInvalidArchive) {
		t.Errorf("1200 bytes under a 1000-byte cap: err = %v, want ErrInvalidArchive", err)
	}
	if err := extractTar(bytes.NewReader(two), t.TempDir(), int64(len(two))); err != nil {
		t.Errorf("within the cap: %v", err)
	}
}

func TestRestoreModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f              Format
		clean, replace bool
		ok             bool
	}{
		{FormatPlain, false, false, true},
		{FormatPlain, true, false, false},
		{FormatPlain, false, true, true},
		{FormatCustom, true, false, true},
		{FormatDirectory, true, false, true},
		{FormatTar, true, true, false},
	}
	for _, tt := range tests {
		err := CheckRestoreMode(tt.f, tt.clean, tt.replace)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s clean=%v replace=%v: err = %v, want ok=%v", tt.f, tt.clean, tt.replace, err, tt.ok)
		}
	}
	if err := CheckRestoreMode(FormatPlain, true, false); !strings.Contains(err.Error(), `"replace": true`) {
		t.Errorf("refusal %q does not name the alternative", err)
	}
	at := time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC)
	if got := replacedName("shop", at); got != "shop_replaced_20261126T010203Z" {
		t.Errorf("replacedName = %s", got)
	}
	if got := replacedName(strings.Repeat("x", 63), at); len(got) != 63 || !strings.HasSuffix(got, "_replaced_20261126T010203Z") {
		t.Errorf("replacedName of a 63-byte name = %s (%d bytes)", got, len(got))
	}
}
