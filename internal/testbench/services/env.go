package services

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Env is how to reach a running bench: what DIR/env exports as
// PGBACKUP_TEST_* variables.
type Env struct {
	Dir        string
	PGHost     string
	PGPort     string
	PGUser     string
	PGPassword string
	PGDatabase string
	// PGSocket is the server's Unix socket directory.
	PGSocket      string
	PGBin         string
	RedisAddr     string
	MinIOEndpoint string
	MinIOUser     string
	MinIOPassword string
	// Tool is a command that manages the bench (svc-stop, svc-start, stop);
	// empty when the starter did not name one.
	Tool string
}

// envVar is one PGBACKUP_TEST_* variable and the Env field it fills.
type envVar struct {
	name  string
	value *string
}

// vars lists e's variables in the order the env file writes them.
func (e *Env) vars() []envVar {
	return []envVar{
		{"PGBACKUP_TEST_DIR", &e.Dir},
		{"PGBACKUP_TEST_PG_HOST", &e.PGHost},
		{"PGBACKUP_TEST_PG_PORT", &e.PGPort},
		{"PGBACKUP_TEST_PG_USER", &e.PGUser},
		{"PGBACKUP_TEST_PG_PASSWORD", &e.PGPassword},
		{"PGBACKUP_TEST_PG_DB", &e.PGDatabase},
		{"PGBACKUP_TEST_PG_SOCKET", &e.PGSocket},
		{"PGBACKUP_TEST_PG_BIN", &e.PGBin},
		{"PGBACKUP_TEST_REDIS_ADDR", &e.RedisAddr},
		{"PGBACKUP_TEST_MINIO_ENDPOINT", &e.MinIOEndpoint},
		{"PGBACKUP_TEST_MINIO_USER", &e.MinIOUser},
		{"PGBACKUP_TEST_MINIO_PASSWORD", &e.MinIOPassword},
		{"PGBACKUP_TEST_TESTBENCH", &e.Tool},
	}
}

// Complete reports whether e names all three servers.
func (e Env) Complete() bool {
	return e.PGPort != "" && e.RedisAddr != "" && e.MinIOEndpoint != ""
}

// Environ returns e as NAME=value entries for a child's environment; empty
// values are left out.
func (e Env) Environ() []string {
	var out []string
	for _, v := range e.vars() {
		if *v.value != "" {
			out = append(out, v.name+"="+*v.value)
		}
	}
	return out
}

// EnvFrom reads the PGBACKUP_TEST_* variables through lookup (os.LookupEnv
// for this process's environment). ok is false unless all three servers
// are named.
func EnvFrom(lookup func(string) (string, bool)) (e Env, ok bool) {
	for _, v := range e.vars() {
		*v.value, _ = lookup(v.name)
	}
	return e, e.Complete()
}

// ReadEnvFile reads an env file as WriteEnvFile (or the old shell script)
// wrote it.
func ReadEnvFile(path string) (Env, error) {
	vars, err := readAssignments(path)
	if err != nil {
		return Env{}, err
	}
	e, _ := EnvFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	return e, nil
}

// WriteEnvFile writes e as a shell file of export lines, readable by its
// owner only (it holds passwords). The file is replaced atomically, so a
// reader never sees half of it.
func WriteEnvFile(path string, e Env) error {
	var b strings.Builder
	for _, v := range e.vars() {
		if *v.value != "" {
			fmt.Fprintf(&b, "export %s=%s\n", v.name, ShellQuote(*v.value))
		}
	}
	return writeFileAtomic(path, []byte(b.String()), 0o600)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readAssignments reads NAME=value lines (optionally prefixed by export),
// the format of both DIR/env and DIR/state; a later line wins.
func readAssignments(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not NAME=value", path, n)
		}
		if out[name], err = shellUnquote(value); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", path, n, name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// ShellQuote returns s as one shell word: unchanged when it holds only
// characters the shell leaves alone, single-quoted otherwise.
func ShellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellUnquote undoes the quoting of one shell word: single quotes, double
// quotes and backslashes, as ShellQuote and bash's printf %q write them.
func shellUnquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated single quote")
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", errors.New("unterminated double quote")
			}
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
