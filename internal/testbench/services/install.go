package services

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pgBinDir is the newest /usr/lib/postgresql/<N>/bin that holds initdb,
// else the directory of the initdb on PATH; "" when there is none.
func pgBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(d string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return n }
	slices.SortFunc(dirs, func(a, b string) int { return major(a) - major(b) })
	for _, d := range slices.Backward(dirs) {
		if isExecutable(filepath.Join(d, "initdb")) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// GoCommand finds the go command: on PATH, else where the official
// tarball installs it.
func GoCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if p := "/usr/local/go/bin/go"; isExecutable(p) {
		return p, nil
	}
	return "", fmt.Errorf("%w: go (install Go; see go.mod for the version)", ErrMissing)
}

// Install puts in place what the bench and the service's tests need:
// PostgreSQL (server and client tools), Redis, Chromium and, as root, runuser, from
// Debian packages with apt-get when run as root; and the MinIO server,
// built once with go install into Options.Cache.
func Install(ctx context.Context, opts Options) error {
	if err := installPackages(ctx, opts); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := buildMinIO(ctx, opts); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// missingPackages lists the programs that are missing and the Debian
// packages that provide them.
func missingPackages() (missing, pkgs []string) {
	pgbin := pgBinDir()
	need := func(ok bool, program, pkg string) {
		if !ok {
			missing = append(missing, program)
			pkgs = append(pkgs, pkg)
		}
	}
	onPath := func(name string) bool { _, err := exec.LookPath(name); return err == nil }
	need(pgbin != "", "initdb", "postgresql")
	need(onPath("redis-server"), "redis-server", "redis-server")
	for _, tool := range []string{"pg_dump", "pg_restore", "psql"} {
		need(onPath(tool) || (pgbin != "" && isExecutable(filepath.Join(pgbin, tool))), tool, "postgresql-client")
	}
	if isRoot() {
		need(onPath("runuser"), "runuser", "util-linux")
	}
	// The backups page is tested in a real browser (internal/e2e).
	need(onPath("chromium"), "chromium", "chromium")
	return missing, pkgs
}

func installPackages(ctx context.Context, opts Options) error {
	missing, pkgs := missingPackages()
	if len(missing) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil || !isRoot() {
		return fmt.Errorf("%w: %s; install them first, e.g. as root:\n    apt-get update && apt-get install -y postgresql postgresql-client redis-server chromium",
			ErrMissing, strings.Join(missing, ", "))
	}
	// postgresql and redis-server are always asked for together, as the
	// README documents.
	pkgs = append(pkgs, "postgresql", "redis-server")
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	fmt.Fprintf(discardIfNil(opts.Log), "testbench: missing: %s; installing: %s\n", strings.Join(missing, " "), strings.Join(pkgs, " "))
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = discardIfNil(opts.Log), discardIfNil(opts.Log)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", args[0], err)
		}
	}
	if missing, _ := missingPackages(); len(missing) > 0 {
		return fmt.Errorf("%w after apt-get install: %s", ErrMissing, strings.Join(missing, ", "))
	}
	return nil
}

// buildMinIO builds the MinIO server into Cache/bin unless it is there.
// A file lock lets one build run at a time: two `make test` at once share
// the cache. GOMODCACHE and GOCACHE stay at their defaults, so that every
// build reuses the same module and build caches.
func buildMinIO(ctx context.Context, opts Options) error {
	bin := opts.minioBin()
	if isExecutable(bin) {
		return nil
	}
	goCmd, err := GoCommand()
	if err != nil {
		return fmt.Errorf("build MinIO (%s): %w", minioModule, err)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return fmt.Errorf("build MinIO: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(opts.Cache, "build.lock"), func() {
		fmt.Fprintf(discardIfNil(opts.Log), "testbench: waiting for another build of MinIO to finish (lock %s)\n", filepath.Join(opts.Cache, "build.lock"))
	})
	if err != nil {
		return fmt.Errorf("build MinIO: %w", err)
	}
	defer unlock()
	if isExecutable(bin) {
		return nil // the other build made it
	}
	log := discardIfNil(opts.Log)
	fmt.Fprintf(log, "testbench: building MinIO into %s (takes ~7 minutes the first time)...\n", bin)
	cmd := exec.CommandContext(ctx, goCmd, "install", minioModule)
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(bin))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build MinIO (go install %s): %w", minioModule, err)
	}
	fmt.Fprintln(log, "testbench: MinIO built")
	return nil
}

// lockFile takes an exclusive flock on path, polling once a second so
// that ctx can end the wait; waiting is called once if the lock is held.
// The lock is the same as flock(1)'s, which the shell script used.
func lockFile(ctx context.Context, path string, waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !told {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
