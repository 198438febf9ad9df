package pgtool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeInstall creates a directory with pg_dump, pg_restore and psql scripts
// that report the given version, as a Debian client package would.
func fakeInstall(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"pg_dump", "pg_restore", "psql"} {
		script := fmt.Sprintf("#!/bin/sh\necho '%s (PostgreSQL) %s (Debian %s-1.pgdg120+1)'\n", name, version, version)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFinderPicksMatchingMajor(t *testing.T) {
	t.Parallel()
	v14, v15, v16 := fakeInstall(t, "14.11"), fakeInstall(t, "15.6"), fakeInstall(t, "16.2")
	tests := []struct {
		name    string
		dirs    []string
		server  int
		wantDir string
		wantErr string
	}{
		{"exact match preferred over newer", []string{v16, v14, v15}, 150006, v15, ""},
		{"oldest newer when no exact", []string{v16, v14}, 150006, v16, ""},
		{"server 16 needs 16", []string{v14, v15, v16}, 160002, v16, ""},
		{"none new enough", []string{v14, v15}, 160002, "", "server is PostgreSQL 16, pg_dump available: 14.11 in"},
		{"nothing installed", nil, 150000, "", "none found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &Finder{Candidates: func() []string { return tt.dirs }}
			got, err := f.Find(context.Background(), tt.server)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoMatchingClient) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Find: err = %v, want ErrNoMatchingClient containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Dir != tt.wantDir {
				t.Fatalf("Find = %+v, %v; want dir %s", got, err, tt.wantDir)
			}
		})
	}
	newest, err := (&Finder{Candidates: func() []string { return []string{v15, v16, v14} }}).Newest(context.Background())
	if err != nil || newest.Major != 16 {
		t.Fatalf("Newest = %+v, %v; want major 16", newest, err)
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		major     int
		version   string
		wantError bool
	}{
		{"pg_dump (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)\n", 15, "15.19", false},
		{"pg_dump (PostgreSQL) 17devel", 17, "17", false},
		{"pg_dump (PostgreSQL) 9.6.24", 9, "9.6", false},
		{"command not found", 0, "", true},
	}
	for _, tt := range tests {
		major, version, err := ParseVersion(tt.in)
		if (err != nil) != tt.wantError || major != tt.major || version != tt.version {
			t.Errorf("ParseVersion(%q) = %d, %q, %v; want %d, %q, error %v", tt.in, major, version, err, tt.major, tt.version, tt.wantError)
		}
	}
}

func TestPasswordOnlyInEnvironment(t *testing.T) {
	t.Parallel()
	c := Conn{Host: "db", Port: 5432, User: "u", Password: "s3cret-pw", Database: "app"}
	cmd := Tools{Dir: "/usr/bin"}.Command(context.Background(), c, "pg_dump", "--format=c")
	for _, a := range cmd.Args {
		if strings.Contains(a, "s3cret-pw") {
			t.Fatalf("password on the command line: %q", cmd.Args)
		}
	}
	if !slices.Contains(cmd.Env, "PGPASSWORD=s3cret-pw") {
		t.Fatal("PGPASSWORD missing from the child's environment")
	}
	if cmd.SysProcAttr == nil || cmd.SysProcAttr.Pdeathsig == 0 {
		t.Fatal("child not tied to the parent's life (Pdeathsig unset)")
	}
}

func TestEnvDropsInheritedPGVariables(t *testing.T) {
	t.Parallel()
	env := Conn{Host: "h", Port: 1, User: "u"}.Env([]string{"PATH=/bin", "PGHOST=evil", "PGSERVICE=other"})
	for _, kv := range env {
		if kv == "PGHOST=evil" || strings.HasPrefix(kv, "PGSERVICE=") {
			t.Fatalf("inherited %s kept in %v", kv, env)
		}
	}
	if !slices.Contains(env, "PATH=/bin") || !slices.Contains(env, "PGHOST=h") {
		t.Fatalf("env = %v, want PATH kept and PGHOST=h", env)
	}
}

func TestCommandErrorCarriesStderr(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := "#!/bin/sh\necho 'pg_dump: error: connection to server failed: FATAL: password authentication failed' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Tools{Dir: dir}.Command(context.Background(), Conn{}, "pg_dump").Run()
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") || !strings.HasPrefix(err.Error(), "pg_dump: ") {
		t.Fatalf("err = %v, want it prefixed with pg_dump and carrying stderr", err)
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	t.Parallel()
	b := &TailBuffer{Max: 10}
	_, _ = b.Write([]byte("0123456789"))
	_, _ = b.Write([]byte("abcdef"))
	if got := b.String(); got != "...6789abcdef" {
		t.Fatalf("TailBuffer = %q, want %q", got, "...6789abcdef")
	}
}

func TestChildrenGetAMinimalEnvironment(t *testing.T) {
	t.Parallel()
	got := MinimalEnv([]string{"PATH=/usr/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "TZ=UTC",
		"MINIO_ROOT_PASSWORD=s3cret", "REDIS_PASSWORD=r", "API_ADMIN_TOKENS=t", "BACKUP_SIGNING_KEY=k", "PGPASSWORD=inherited", "AWS_SECRET_ACCESS_KEY=a"})
	env := Conn{Host: "h", Port: 5432, User: "u", Password: "pw", Database: "d"}.Env(got)
	joined := strings.Join(env, "\n")
	for _, secret := range []string{"s3cret", "REDIS_PASSWORD", "API_ADMIN_TOKENS", "BACKUP_SIGNING_KEY", "inherited", "AWS_SECRET"} {
		if strings.Contains(joined, secret) {
			t.Errorf("child environment holds %s:\n%s", secret, joined)
		}
	}
	for _, keep := range []string{"PATH=/usr/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "TZ=UTC", "PGPASSWORD=pw"} {
		if !strings.Contains(joined, keep) {
			t.Errorf("child environment lacks %s", keep)
		}
	}
}
