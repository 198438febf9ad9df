package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/autograph/pgbackup/internal/testbench/services"
	"github.com/autograph/pgbackup/jobs/pgtool"
)

// options are the benchmark's command-line settings.
type options struct {
	db        string
	rows      int64
	pgbackup  string
	maxRSSMiB int64
	workDir   string
	keep      bool
	repeat    int
	service   bool
	cli       bool
	only      string
	// soakBackups is how many backups the soak queues at once.
	soakBackups int
}

// benchEnv is how to reach the running bench: its PGBACKUP_TEST_*
// variables, which `make bench` exports.
type benchEnv struct {
	services.Env
	// pg is the bench's password role.
	pg pgtool.Conn
	// minioPid is the bench's MinIO server, to measure its CPU; 0 if unknown.
	minioPid int
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "put" || args[0] == "get") {
		return runTransfer(ctx, args[0], args[1:])
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.db, "db", "bench_800mb", "database to generate (once) and back up")
	fs.Int64Var(&o.rows, "rows", 3_000_000, "rows in the generated table")
	fs.StringVar(&o.pgbackup, "pgbackup", "bin/pgbackup", "the pgbackup binary to measure")
	fs.Int64Var(&o.maxRSSMiB, "max-rss-mib", 200, "fail when an engine backup's peak RSS reaches this")
	fs.StringVar(&o.workDir, "workdir", "", "directory for temporary files (default: the system temp dir)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's bucket and restored databases")
	fs.IntVar(&o.repeat, "repeat", 1, "run each step this many times and report the fastest (other load only adds time)")
	fs.StringVar(&o.only, "only", "", "with -cli=false: run only this part of the service bench: load, repeated, soak or wal")
	fs.IntVar(&o.soakBackups, "soak-backups", 500, "backups the soak queues at once")
	fs.BoolVar(&o.cli, "cli", true, "measure the one-shot CLI against pg_dump's compression levels")
	fs.BoolVar(&o.service, "service", true, "also measure the service through its API (bin/api and bin/worker beside -pgbackup)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.rows < 1 {
		return errors.New("-rows must be at least 1")
	}
	if o.repeat < 1 {
		return errors.New("-repeat must be at least 1")
	}
	env, err := loadEnv()
	if err != nil {
		return err
	}
	if o.pgbackup, err = filepath.Abs(o.pgbackup); err != nil {
		return fmt.Errorf("-pgbackup: %w", err)
	}
	if _, err := os.Stat(o.pgbackup); err != nil {
		return fmt.Errorf("-pgbackup: %w (build it with: go build -o bin/pgbackup ./cmd/pgbackup)", err)
	}
	return benchmark(ctx, o, env)
}

func loadEnv() (benchEnv, error) {
	se, _ := services.EnvFrom(os.LookupEnv)
	e := benchEnv{Env: se}
	var missing []string
	for name, v := range map[string]string{
		"PG_HOST": se.PGHost, "PG_PORT": se.PGPort, "PG_USER": se.PGUser, "PG_BIN": se.PGBin,
		"MINIO_ENDPOINT": se.MinIOEndpoint, "MINIO_USER": se.MinIOUser, "MINIO_PASSWORD": se.MinIOPassword,
	} {
		if v == "" {
			missing = append(missing, "PGBACKUP_TEST_"+name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return e, fmt.Errorf("test bench environment missing (%v): run through `make bench` or source .testbench/env", missing)
	}
	port, err := strconv.Atoi(se.PGPort)
	if err != nil {
		return e, fmt.Errorf("PGBACKUP_TEST_PG_PORT: %w", err)
	}
	e.pg = pgtool.Conn{Host: se.PGHost, Port: port, User: se.PGUser, Password: se.PGPassword, SSLMode: "disable"}
	// The bench knows its MinIO's pid, checked to be its own.
	if se.Dir != "" {
		if b, err := services.Open(se.Dir, services.Options{}); err == nil {
			e.minioPid = b.Pid(services.MinIO)
		}
	}
	return e, nil
}
