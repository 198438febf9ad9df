package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/autograph/pgbackup/internal/testbench/services"
)

const usage = `usage: testbench COMMAND [ARGS]
  install             install what is missing (apt-get as root; MinIO via go install)
  start DIR           start PostgreSQL, Redis and MinIO on free ports, write DIR/env
  up DIR              start DIR's bench, or the servers of it that are down
  stop DIR            stop them, remove DIR (unless KEEP_TESTBENCH=1)
  svc-stop NAME DIR   stop one server (NAME: postgres, redis, minio)
  svc-start NAME DIR  start it again on the same port with the same data
  env DIR             print DIR/env
  run [--] CMD [ARGS] start a bench in a fresh temporary directory, run CMD with
                      its PGBACKUP_TEST_* variables, stop the bench, exit with
                      CMD's status (SIGINT and SIGTERM go to CMD's whole tree)
Settings: PGBACKUP_CACHE (MinIO build cache), KEEP_TESTBENCH=1,
TESTBENCH_REDIS_PERSIST=1 (Redis keeps an append-only file).
`

// errUsage is a command line that does not parse.
var errUsage = errors.New("bad usage")

// exitCode ends the program with this status and no message.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// serviceNames are the names the command line gives the servers.
var serviceNames = map[string]services.Service{
	"postgres": services.Postgres,
	"redis":    services.Redis,
	"minio":    services.MinIO,
}

func parseService(name string) (services.Service, error) {
	if s, ok := serviceNames[name]; ok {
		return s, nil
	}
	names := make([]string, 0, len(serviceNames))
	for n := range serviceNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return 0, fmt.Errorf("%w: unknown service %q (%s)", errUsage, name, strings.Join(names, ", "))
}

// command is one subcommand: its arguments' names and what it does.
type command struct {
	args []string
	do   func(ctx context.Context, opts services.Options, args []string) error
}

var commands = map[string]command{
	"install": {nil, func(ctx context.Context, opts services.Options, _ []string) error {
		return services.Install(ctx, opts)
	}},
	"start": {[]string{"DIR"}, func(ctx context.Context, opts services.Options, args []string) error {
		_, err := services.Start(ctx, args[0], opts)
		return err
	}},
	"up": {[]string{"DIR"}, func(ctx context.Context, opts services.Options, args []string) error {
		_, err := services.Up(ctx, args[0], opts)
		return err
	}},
	"stop": {[]string{"DIR"}, func(ctx context.Context, opts services.Options, args []string) error {
		b, err := services.Open(args[0], opts)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // nothing to stop
		}
		if err != nil {
			return err
		}
		return b.Stop(ctx)
	}},
	"svc-stop": {[]string{"NAME", "DIR"}, func(ctx context.Context, opts services.Options, args []string) error {
		return withService(args, opts, func(b *services.Bench, s services.Service) error { return b.StopService(ctx, s) })
	}},
	"svc-start": {[]string{"NAME", "DIR"}, func(ctx context.Context, opts services.Options, args []string) error {
		return withService(args, opts, func(b *services.Bench, s services.Service) error { return b.StartService(ctx, s) })
	}},
	"env": {[]string{"DIR"}, func(_ context.Context, opts services.Options, args []string) error {
		b, err := services.Open(args[0], opts)
		if err != nil {
			return err
		}
		if _, err := b.Env(); err != nil {
			return err
		}
		out, err := os.ReadFile(filepath.Join(b.Dir(), "env"))
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(out)
		return err
	}},
}

func withService(args []string, opts services.Options, do func(*services.Bench, services.Service) error) error {
	s, err := parseService(args[0])
	if err != nil {
		return err
	}
	b, err := services.Open(args[1], opts)
	if err != nil {
		return err
	}
	return do(b, s)
}

func run(ctx context.Context, args []string, sigs <-chan os.Signal) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	opts := services.OptionsFromEnv(os.LookupEnv)
	opts.Log = os.Stderr
	// The env file names this program, for a shell that wants to stop or
	// restart a server by hand.
	if exe, err := os.Executable(); err == nil {
		opts.Tool = exe
	}
	name, args := args[0], args[1:]
	if name == "run" {
		return runWithBench(ctx, opts, args, sigs)
	}
	cmd, ok := commands[name]
	if !ok {
		return fmt.Errorf("%w: unknown command %q", errUsage, name)
	}
	if len(args) != len(cmd.args) {
		return fmt.Errorf("%w: usage: testbench %s", errUsage, strings.Join(append([]string{name}, cmd.args...), " "))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "testbench: got %v, stopping\n", s)
			cancel()
		case <-ctx.Done():
		}
	}()
	return cmd.do(ctx, opts, args)
}
