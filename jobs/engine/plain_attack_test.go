package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
)

// The tests below model an attacker who can write the bucket: each forges
// a plain archive (or globals file) and rewrites the manifest's size and
// checksum to match. Signing is off, since it is the layer under test
// here that must hold without it. Each attack runs twice: with both
// layers, and with the scanner turned off, so that psql's restricted mode
// alone must refuse it. Either way the restore fails as an invalid archive
// (a permanent error), the shell command never runs, nothing connects to
// the planted host, and the target database is unchanged.

// plainAttack is one forged archive; body gets the file a planted shell
// command would create and the port of a listener standing for another
// host.
type plainAttack struct {
	name string
	body func(marker string, port int) string
}

var plainAttacks = []plainAttack{
	{"shell escape", func(m string, _ int) string {
		return "CREATE TABLE planted (x int);\n\\! touch " + m + "\n"
	}},
	{"copy to a program", func(m string, _ int) string {
		return "CREATE TABLE planted (x int);\n\\copy (SELECT 1) to program 'touch " + m + "'\n"
	}},
	// The old scanner took the second line for the start of COPY data.
	{"COPY split over two lines", func(m string, _ int) string {
		return "CREATE TABLE stdin (x int);\nSELECT 1 AS\nCOPY FROM stdin;\n\\! touch " + m + "\n"
	}},
	// The old scanner missed the COPY and read "it's" as opening a string.
	{"COPY FROM STDIN with a quote in its data", func(m string, _ int) string {
		return "CREATE TABLE planted (x text);\nCOPY planted FROM STDIN;\nit's\n\\.\n\\! touch " + m + "\n'\n"
	}},
	// With standard_conforming_strings off, psql ends the string at the
	// second quote; read with it on, the string runs past the \!.
	{"standard_conforming_strings off", func(m string, _ int) string {
		return "CREATE TABLE planted (x int);\nSET standard_conforming_strings = off;\nSELECT 'a\\'' AS x;\n\\! touch " + m + "\n--'\n"
	}},
	{"connect to another host", func(_ string, port int) string {
		return fmt.Sprintf("CREATE TABLE planted (x int);\n\\connect \"host=127.0.0.1 port=%d dbname=x\"\n", port)
	}},
}

// markerPath is the file a planted shell command would create. Its
// directory is not named after the test: the scanner refuses strings that
// name standard_conforming_strings, and a test name holding it would be
// refused for that instead of for the attack.
func markerPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "plain-attack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "pwned")
}

// forgePlain stores body as the plain archive of the backup name, and the
// manifest's size and checksum to match.
func forgePlain(t *testing.T, mem *store.Memory, name string, body []byte) {
	t.Helper()
	if err := mem.Put(context.Background(), engine.ArchiveKey(engine.MustParseName(name), engine.FormatPlain, engine.Codec{}), bytes.NewReader(body), nil); err != nil {
		t.Fatal(err)
	}
	editManifest(t, mem, name, func(m map[string]any) {
		matchArchive(m, body)
	})
}

// hostListener stands for another host: it counts the connections made
// to it.
func hostListener(t *testing.T) (int, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, &n
}

// assertRefused checks a refused attack's outcome.
func assertRefused(t *testing.T, b *bench, err error, restricted bool, marker string, conns *atomic.Int64, target string, before map[string]string) {
	t.Helper()
	if !errors.Is(err, engine.ErrInvalidArchive) || !tasks.Permanent(err) || tasks.Classify(err) != "invalid archive" {
		t.Fatalf("restore of a forged archive: err = %v, want a permanent ErrInvalidArchive", err)
	}
	if psqlRefused := strings.Contains(err.Error(), "restricted mode"); psqlRefused != restricted {
		t.Fatalf("err = %v; want the refusal from %s", err, map[bool]string{true: "psql's restricted mode", false: "the scanner, before psql ran"}[restricted])
	}
	if _, serr := os.Stat(marker); serr == nil {
		t.Fatal("the planted shell command ran")
	}
	if conns.Load() != 0 {
		t.Fatalf("psql connected %d times to the planted host", conns.Load())
	}
	if target != "" {
		if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), before); diff != "" {
			t.Fatalf("the refused restore changed the target:\n%s", diff)
		}
	}
}

func TestForgedPlainArchivesAreRefused(t *testing.T) {
	b := setup(t)
	for _, a := range plainAttacks {
		for _, scan := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/scanner=%v", a.name, scan), func(t *testing.T) {
				t.Parallel()
				mem := store.NewMemory("")
				e := b.engineWith(t, mem, nil)
				if !scan {
					engine.WithoutPlainScan(e)
				}
				ctx := context.Background()
				if _, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("forged"), Format: engine.FormatPlain}); err != nil {
					t.Fatal(err)
				}
				marker := markerPath(t)
				port, conns := hostListener(t)
				forgePlain(t, mem, "forged", []byte(a.body(marker, port)))
				// An existing, empty target: the restore may run into it,
				// and must leave it as it was.
				target := testbench.UniqueName("forged")
				b.env.CreateDB(t, target)
				before := b.env.Fingerprint(t, target)
				_, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("forged"), TargetDatabase: pgtool.MustParseIdent(target)})
				assertRefused(t, b, err, !scan, marker, conns, target, before)
			})
		}
	}
}

// TestForgedServerArchiveIsRefused forges a whole-server backup, whose
// databases' plain archives are run by psql the same way.
func TestForgedServerArchiveIsRefused(t *testing.T) {
	b := setup(t)
	for _, scan := range []bool{true, false} {
		t.Run(fmt.Sprintf("scanner=%v", scan), func(t *testing.T) {
			t.Parallel()
			mem := store.NewMemory("")
			e := b.engineWith(t, mem, nil)
			if !scan {
				engine.WithoutPlainScan(e)
			}
			ctx := context.Background()
			if _, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("server"), Format: engine.FormatPlain}); err != nil {
				t.Fatal(err)
			}
			target := testbench.UniqueName("forged_server")
			b.env.CreateDB(t, target)
			before := b.env.Fingerprint(t, target)
			marker := markerPath(t)
			body := []byte("CREATE TABLE planted (x int);\n\\! touch " + marker + "\n")
			name := engine.MustParseName("server")
			key := engine.ServerArchiveKey(name, target, engine.FormatPlain)
			if err := mem.Put(ctx, key, bytes.NewReader(body), nil); err != nil {
				t.Fatal(err)
			}
			editManifest(t, mem, "server", func(m map[string]any) {
				m["kind"], m["archive_key"] = engine.ContentServer, ""
				db := map[string]any{"database": target, "archive_key": key}
				matchArchive(db, body)
				m["databases"] = []map[string]any{db}
			})
			_, err := e.Restore(ctx, engine.RestoreRequest{Name: name, Databases: []pgtool.Ident{pgtool.MustParseIdent(target)}})
			var none atomic.Int64
			assertRefused(t, b, err, !scan, marker, &none, target, before)
		})
	}
}

// TestForgedGlobalsAreCheckedAsPsqlReadsThem: the globals file is checked
// after the lines of existing roles are filtered out, on the bytes psql
// reads. A meta-command that only filtering reveals (its line opened a
// string around it) is refused; one that filtering removes is harmless.
func TestForgedGlobalsAreCheckedAsPsqlReadsThem(t *testing.T) {
	b := setup(t)
	existing := b.env.PGUser // a role that exists: filtering drops its lines
	forge := func(t *testing.T, body string) (*engine.Engine, *store.Memory) {
		mem := store.NewMemory("")
		e := b.engineWith(t, mem, nil)
		if _, err := e.Backup(context.Background(), engine.BackupRequest{Name: engine.MustParseName("globals"), Format: engine.FormatPlain, IncludeGlobals: true}); err != nil {
			t.Fatal(err)
		}
		var key string
		editManifest(t, mem, "globals", func(m map[string]any) {
			g := m["globals"].(map[string]any)
			key = g["archive_key"].(string)
			matchArchive(g, []byte(body))
		})
		if err := mem.Put(context.Background(), key, strings.NewReader(body), nil); err != nil {
			t.Fatal(err)
		}
		return e, mem
	}
	for _, scan := range []bool{true, false} {
		t.Run(fmt.Sprintf("revealed by filtering/scanner=%v", scan), func(t *testing.T) {
			t.Parallel()
			marker := markerPath(t)
			e, _ := forge(t, "CREATE ROLE "+existing+"; SELECT '\n\\! touch "+marker+"\n';\n")
			if !scan {
				engine.WithoutPlainScan(e)
			}
			target := testbench.UniqueName("globals_target")
			b.env.DropDBOnCleanup(t, target)
			_, err := e.Restore(context.Background(), engine.RestoreRequest{Name: engine.MustParseName("globals"),
				TargetDatabase: pgtool.MustParseIdent(target), RestoreGlobals: true})
			var none atomic.Int64
			assertRefused(t, b, err, !scan, marker, &none, "", nil)
			if b.env.DatabaseExists(t, target) {
				t.Fatal("the restore went on after its globals were refused")
			}
		})
	}
	t.Run("removed by filtering", func(t *testing.T) {
		t.Parallel()
		marker := markerPath(t)
		e, _ := forge(t, "CREATE ROLE "+existing+"; \\! touch "+marker+"\nSELECT 1;\n")
		target := testbench.UniqueName("globals_ok")
		b.env.DropDBOnCleanup(t, target)
		if _, err := e.Restore(context.Background(), engine.RestoreRequest{Name: engine.MustParseName("globals"),
			TargetDatabase: pgtool.MustParseIdent(target), RestoreGlobals: true}); err != nil {
			t.Fatalf("restore whose meta-command filtering removed: %v", err)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("the filtered shell command ran")
		}
	})
}
