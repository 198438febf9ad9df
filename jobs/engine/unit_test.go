package engine

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

func TestValidateName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ok   bool
	}{
		{"autograph_backup_20240101_120000", true},
		{"nightly.2024-01-01", true},
		{"a", true},
		{"_x", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{".hidden", false},
		{"../x", false},
		{"a/b", false},
		{"a b", false},
		{"nul\x00", false},
		{"ünïcode", false},
		{strings.Repeat("x", 10240), false},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%.20q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%.20q) error %v does not wrap ErrInvalid", tt.name, err)
		}
	}
}

// TestNameOnlyByParsing: the zero Name is refused, and a Name read from
// JSON (a manifest, a payload) is parsed, not trusted.
func TestNameOnlyByParsing(t *testing.T) {
	t.Parallel()
	if err := (Name{}).required(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero Name: err = %v, want ErrInvalid", err)
	}
	var n Name
	if err := json.Unmarshal([]byte(`"../x"`), &n); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Unmarshal of ../x: err = %v, want ErrInvalid", err)
	}
	if err := json.Unmarshal([]byte(`"nightly.1"`), &n); err != nil || n.String() != "nightly.1" {
		t.Fatalf("Unmarshal of nightly.1 = %q, %v", n, err)
	}
	if b, err := json.Marshal(n); err != nil || string(b) != `"nightly.1"` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
}

// TestFormatOnlyByParsing: the zero Format is refused, a Format read from
// JSON is parsed, and JSON carries the format's plain name.
func TestFormatOnlyByParsing(t *testing.T) {
	t.Parallel()
	if _, err := (&Engine{}).validateBackup(BackupRequest{Name: MustParseName("x")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("backup with the zero Format: err = %v, want ErrInvalid", err)
	}
	var f Format
	if err := json.Unmarshal([]byte(`"zip"`), &f); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Unmarshal of zip: err = %v, want ErrInvalid", err)
	}
	if err := json.Unmarshal([]byte(`"tar"`), &f); err != nil || f != FormatTar {
		t.Fatalf("Unmarshal of tar = %v, %v", f, err)
	}
	if b, err := json.Marshal(struct{ F Format }{FormatDirectory}); err != nil || string(b) != `{"F":"directory"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	// An old manifest without a format reads as it was written, and
	// restores as custom.
	if err := json.Unmarshal([]byte(`""`), &f); err != nil || !f.IsZero() || f.Extension() != FormatCustom.Extension() {
		t.Fatalf("Unmarshal of an empty format = %v, %v", f, err)
	}
}

// TestParseDatabase: database names are parsed at the edge; "*" is a
// whole-server backup only where a backup's database is parsed; the
// engine refuses the zero Ident where a database is required.
func TestParseDatabase(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]struct {
		db    string
		whole bool
	}{"": {"", false}, "*": {"", true}, "shop": {"shop", false}, "_a$1": {"_a$1", false}} {
		db, whole, err := ParseBackupDatabase(in)
		if err != nil || db.String() != want.db || whole != want.whole {
			t.Errorf("ParseBackupDatabase(%q) = %q, %v, %v; want %q, %v", in, db, whole, err, want.db, want.whole)
		}
	}
	for _, bad := range []string{"a;b", "1db", "x y", strings.Repeat("a", 64)} {
		if _, _, err := ParseBackupDatabase(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseBackupDatabase(%q) err = %v, want ErrInvalid", bad, err)
		}
	}
	for _, bad := range []string{"", "*"} {
		if _, err := ParseDatabase(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDatabase(%q) err = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := ParseDatabases([]string{"shop", "a;b"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseDatabases with a bad name: err = %v, want ErrInvalid", err)
	}
	if _, err := (&Engine{}).Drill(t.Context(), MustParseName("n"), pgtool.Ident{}, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("drill into the zero Ident: err = %v, want ErrInvalid", err)
	}
	m := &Manifest{Name: MustParseName("n"), Content: ContentServer, Databases: []DatabaseArchive{{Database: "shop"}}}
	if _, err := m.serverParts([]pgtool.Ident{{}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("restore of the zero Ident: err = %v, want ErrInvalid", err)
	}
}

func TestKeysNeverCollide(t *testing.T) {
	t.Parallel()
	// A name plus one format's extension must never equal another name plus
	// another extension, nor a manifest key.
	// The objects stored beside a backup (globals, a bucket's or a base
	// backup's tar, backup_manifest) never collide with any of those, nor
	// with each other.
	names := []string{"x", "x.dir", "x.tar", "x.dump", "x.sql", "x.manifest", "x.dirtar", "x.base", "x.json"}
	seen := map[string]string{}
	for _, n := range names {
		name := MustParseName(n)
		keys := map[string]string{ManifestKey(name): "manifest"}
		for _, c := range []Codec{{}, DefaultCodec, {Name: CodecGzip, Level: 6}} {
			for _, f := range Formats {
				keys[ArchiveKey(name, f, c)] = f.String()
			}
			for _, enc := range []bool{false, true} {
				for what, key := range map[string]func(Name, Codec, bool) string{"globals": globalsKey, "bucket": bucketArchiveKey,
					"base": baseArchiveKey, "backup_manifest": backupManifestKey} {
					k := key(name, c, enc)
					if prev, ok := keys[k]; ok {
						t.Fatalf("key %s is both %s's and %s's of %q", k, prev, what, n)
					}
					keys[k] = what
				}
			}
		}
		for k := range keys {
			if prev, ok := seen[k]; ok && prev != n {
				t.Fatalf("key %s produced by names %q and %q", k, prev, n)
			}
			seen[k] = n
		}
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Format{"": FormatCustom, "custom": FormatCustom, "PLAIN": FormatPlain, "directory": FormatDirectory, "tar": FormatTar} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseFormat("zip"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseFormat(zip) err = %v, want ErrInvalid", err)
	}
}

func TestTarRoundTripAndRefusesEscapes(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	for name, body := range map[string]string{"toc.dat": "toc", "3001.dat.gz": "data"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := writeTar(&buf, src); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := extractTar(bytes.NewReader(buf.Bytes()), dst, -1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "3001.dat.gz")); string(b) != "data" {
		t.Fatalf("extracted 3001.dat.gz = %q, want data", b)
	}

	for _, evil := range []string{"../escape", "/abs", "sub/file", ".."} {
		var eb bytes.Buffer
		tw := tar.NewWriter(&eb)
		_ = tw.WriteHeader(&tar.Header{Name: evil, Mode: 0o600, Size: 1, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("x"))
		_ = tw.Close()
		if err := extractTar(bytes.NewReader(eb.Bytes()), t.TempDir(), -1); err == nil {
			t.Errorf("extractTar accepted entry %q", evil)
		}
	}
}

func TestExitReaderTurnsFailedExitIntoError(t *testing.T) {
	t.Parallel()
	boom := errors.New("exit status 1")
	r := &exitReader{r: strings.NewReader("partial"), wait: func() error { return boom }}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r)
	if !errors.Is(err, boom) {
		t.Fatalf("read to end: err = %v, want the process error", err)
	}
}

// The reader reaching EOF and the cleanup after an early stop may both
// reap pg_dump at once; exec.Cmd.Wait run twice concurrently blocks for
// ever, so the process must be waited for exactly once.
func TestExitReaderReapsOnce(t *testing.T) {
	t.Parallel()
	var waits atomic.Int32
	boom := errors.New("signal: killed")
	for range 200 {
		waits.Store(0)
		r := &exitReader{r: strings.NewReader("x"), wait: func() error { waits.Add(1); return boom }}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, r) }()
		go func() { defer wg.Done(); _ = r.reap() }()
		wg.Wait()
		if n := waits.Load(); n != 1 {
			t.Fatalf("process waited for %d times, want once", n)
		}
		if err := r.reap(); !errors.Is(err, boom) {
			t.Fatalf("reap after the reader = %v, want the process error", err)
		}
	}
}

// A retried task finds what its earlier attempt left under its name: done
// everywhere (return it), part way (back up again), or someone else's
// backup (ErrExists).
func TestResumable(t *testing.T) {
	t.Parallel()
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetOutput(io.Discard)
	m := &Manifest{TaskID: "task-1", Stores: []string{"store-a", "store-b"}}
	tests := []struct {
		name, task string
		where      []string
		done       bool
		exists     bool
	}{
		{"finished by an earlier attempt", "task-1", []string{"store-a", "store-b"}, true, false},
		{"stopped after one store", "task-1", []string{"store-a"}, false, false},
		{"another task's backup", "task-2", []string{"store-a", "store-b"}, false, true},
		{"no task id", "", []string{"store-a"}, false, true},
	}
	for _, tt := range tests {
		done, err := resumable(MustParseName("b"), tt.task, m, tt.where, log)
		if done != tt.done || errors.Is(err, ErrExists) != tt.exists {
			t.Errorf("%s: done %v err %v, want done %v exists %v", tt.name, done, err, tt.done, tt.exists)
		}
	}
}
