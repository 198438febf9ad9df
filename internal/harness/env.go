package harness

import (
	"net"
	"os"
	"strings"

	"github.com/autograph/pgbackup/internal/testbench/services"
)

// BenchEnv returns the settings that point the programs at the bench e:
// its PostgreSQL (without TLS), Redis and MinIO, and its PostgreSQL tools.
// Callers add the rest (database, bucket, tokens, ...).
func BenchEnv(e services.Env) []string {
	return []string{
		"POSTGRES_HOST=" + e.PGHost, "POSTGRES_PORT=" + e.PGPort, "POSTGRES_USER=" + e.PGUser,
		"POSTGRES_PASSWORD=" + e.PGPassword, "POSTGRES_SSLMODE=disable", "PG_BIN_DIR=" + e.PGBin,
		"MINIO_ENDPOINT=" + e.MinIOEndpoint, "MINIO_ROOT_USER=" + e.MinIOUser,
		"MINIO_ROOT_PASSWORD=" + e.MinIOPassword, "REDIS_ADDR=" + e.RedisAddr,
	}
}

// Without returns env without the variables whose name drop reports: a
// setting inherited from the caller's environment must not override one
// the harness means to leave unset.
func Without(env []string, drop func(name string) bool) []string {
	var out []string
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); !drop(name) {
			out = append(out, kv)
		}
	}
	return out
}

// Names reports whether a variable's name is one of names, for Without.
func Names(names ...string) func(string) bool {
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	return func(name string) bool { return set[name] }
}

// Inherit is this process's environment without the variables drop
// reports: the base of a program's environment when it should see PATH
// and HOME but choose its own settings.
func Inherit(drop func(name string) bool) []string { return Without(os.Environ(), drop) }

// FreeAddr returns a loopback address with a port that was free a moment
// ago. Another process may take it before the program binds it; callers
// that care retry on another.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
