package services

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShellQuoteRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "/tmp/a b/c", "it's", `a"b$c\d`, "127.0.0.1:6379", "x'y'z"} {
		q := ShellQuote(s)
		got, err := shellUnquote(q)
		if err != nil || got != s {
			t.Errorf("shellUnquote(ShellQuote(%q) = %s) = %q, %v", s, q, got, err)
		}
	}
}

// The shell script that came before wrote values with bash's printf %q;
// its benches must still open.
func TestShellUnquoteBashStyle(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"plain", "/tmp/pgbackup-testbench.Ab12", "/tmp/pgbackup-testbench.Ab12"},
		{"escaped space", `/tmp/a\ b`, "/tmp/a b"},
		{"escaped quote", `it\'s`, "it's"},
		{"single quotes", `'a b'`, "a b"},
		{"double quotes", `"a \"b\" \$c"`, `a "b" $c`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := shellUnquote(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("shellUnquote(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"'open", `"open`} {
		if _, err := shellUnquote(bad); err == nil {
			t.Errorf("shellUnquote(%s) succeeded, want an error", bad)
		}
	}
}

func TestEnvFileRoundTrip(t *testing.T) {
	t.Parallel()
	want := Env{
		Dir: "/tmp/bench dir", PGHost: "127.0.0.1", PGPort: "25432", PGUser: "autograph",
		PGPassword: "0123abcd", PGDatabase: "autograph", PGSocket: "/tmp/x/sock", PGBin: "/usr/lib/postgresql/15/bin",
		RedisAddr: "127.0.0.1:26379", MinIOEndpoint: "http://127.0.0.1:29000", MinIOUser: "pgbackup-test",
		MinIOPassword: "it's secret",
	}
	path := filepath.Join(t.TempDir(), "env")
	if err := WriteEnvFile(path, want); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode = %v, %v; want 0600 (it holds passwords)", fi.Mode(), err)
	}
	got, err := ReadEnvFile(path)
	if err != nil || got != want {
		t.Fatalf("ReadEnvFile = %+v, %v\nwant %+v", got, err, want)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "PGBACKUP_TEST_TESTBENCH") {
		t.Errorf("an empty Tool was written:\n%s", b)
	}
	environ := map[string]string{}
	for _, kv := range want.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		environ[k] = v
	}
	fromEnv, ok := EnvFrom(func(k string) (string, bool) { v, ok := environ[k]; return v, ok })
	if !ok || fromEnv != want {
		t.Errorf("EnvFrom(Environ()) = %+v, %v; want %+v", fromEnv, ok, want)
	}
	if _, ok := EnvFrom(func(string) (string, bool) { return "", false }); ok {
		t.Error("EnvFrom of an empty environment reports a bench")
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want Options
	}{
		{"defaults", map[string]string{"HOME": "/home/u"}, Options{Cache: "/home/u/.cache/pgbackup-testbench"}},
		{"xdg", map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/c"}, Options{Cache: "/c/pgbackup-testbench"}},
		{"all set", map[string]string{"PGBACKUP_CACHE": "/p", "KEEP_TESTBENCH": "1", "TESTBENCH_REDIS_PERSIST": "1"},
			Options{Cache: "/p", Keep: true, RedisPersist: true}},
		{"keep needs 1", map[string]string{"PGBACKUP_CACHE": "/p", "KEEP_TESTBENCH": "yes"}, Options{Cache: "/p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := OptionsFromEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if got != tt.want {
				t.Errorf("OptionsFromEnv = %+v, want %+v", got, tt.want)
			}
		})
	}
}
