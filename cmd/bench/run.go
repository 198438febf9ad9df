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
	"strings"
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
}

// benchEnv is what scripts/testbench.sh exported for a running bench.
type benchEnv struct {
	pgHost, pgUser, pgPassword, pgBin string
	pgPort                            int
	minioEndpoint, minioUser          string
	minioPassword                     string
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
	get := func(name string) string { return os.Getenv("PGBACKUP_TEST_" + name) }
	e := benchEnv{
		pgHost: get("PG_HOST"), pgUser: get("PG_USER"), pgPassword: get("PG_PASSWORD"), pgBin: get("PG_BIN"),
		minioEndpoint: get("MINIO_ENDPOINT"), minioUser: get("MINIO_USER"), minioPassword: get("MINIO_PASSWORD"),
	}
	var missing []string
	for name, v := range map[string]string{
		"PG_HOST": e.pgHost, "PG_PORT": get("PG_PORT"), "PG_USER": e.pgUser, "PG_BIN": e.pgBin,
		"MINIO_ENDPOINT": e.minioEndpoint, "MINIO_USER": e.minioUser, "MINIO_PASSWORD": e.minioPassword,
	} {
		if v == "" {
			missing = append(missing, "PGBACKUP_TEST_"+name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return e, fmt.Errorf("test bench environment missing (%v): run through `make bench` or source .testbench/env", missing)
	}
	port, err := strconv.Atoi(get("PG_PORT"))
	if err != nil {
		return e, fmt.Errorf("PGBACKUP_TEST_PG_PORT: %w", err)
	}
	e.pgPort = port
	// testbench.sh records MinIO's pid in DIR/minio/minio.pid.
	if b, err := os.ReadFile(filepath.Join(get("DIR"), "minio", "minio.pid")); err == nil && get("DIR") != "" {
		e.minioPid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return e, nil
}
