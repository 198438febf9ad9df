package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
)

// Service names one of the bench's servers. The command line spells them
// postgres, redis and minio (cmd/testbench parses those); String gives
// the product name for messages.
type Service int

// The bench's servers.
const (
	Postgres Service = iota + 1
	Redis
	MinIO
)

// Services lists every server in the order messages list them.
func Services() []Service { return []Service{Postgres, Redis, MinIO} }

var serviceTitles = map[Service]string{Postgres: "PostgreSQL", Redis: "Redis", MinIO: "MinIO"}

func (s Service) String() string {
	if t, ok := serviceTitles[s]; ok {
		return t
	}
	return fmt.Sprintf("Service(%d)", int(s))
}

// Sentinel errors, for errors.Is.
var (
	// ErrNotBench means a directory holds no bench marker: the bench
	// refuses to stop or delete anything in it.
	ErrNotBench = errors.New("not a test bench directory")
	// ErrExists means Start was given a directory that already holds a bench.
	ErrExists = errors.New("directory already holds a test bench")
	// ErrNotStarted means the bench's start never finished (no DIR/env).
	ErrNotStarted = errors.New("test bench was not started")
	// ErrMissing means a program the bench needs is not installed.
	ErrMissing = errors.New("missing program")
)

// minioModule is the MinIO server built by Install; go install names the
// binary after the module path's last element.
const minioModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// minioProgram is the MinIO binary's name, also the name of its directory
// in the bench (DIR/minio).
var minioProgram = path.Base(strings.SplitN(minioModule, "@", 2)[0])

// Fixed names inside the bench.
const (
	marker    = ".pgbackup-testbench"
	pgUser    = "autograph"
	pgDB      = "autograph"
	minioUser = "pgbackup-test"
	loopback  = "127.0.0.1"
)

// Options configure the bench. The zero value works, except that Cache
// must be set for MinIO (OptionsFromEnv does it).
type Options struct {
	// Log receives progress messages, one line each; nil discards them.
	Log io.Writer
	// Cache holds the MinIO binary (Cache/bin/minio) and its build lock.
	Cache string
	// Keep leaves the directory (logs, data) in place when the bench stops.
	Keep bool
	// RedisPersist makes Redis keep an append-only file, so that queued
	// tasks survive StopService/StartService (tests of a Redis restart).
	RedisPersist bool
	// Tool is recorded in the env file as PGBACKUP_TEST_TESTBENCH: a
	// command that manages the bench.
	Tool string
	// PostgresOnly starts PostgreSQL alone: a test that needs a private
	// PostgreSQL only does not pay for Redis and MinIO.
	PostgresOnly bool
	// PITR makes PostgreSQL a server for WAL archiving tests: fsync on
	// (a kill test is meaningless without it), wal_level=replica,
	// max_wal_senders=4, max_slot_wal_keep_size=256MB (set with ALTER
	// SYSTEM so that a test can change it and reload) and a test role
	// with REPLICATION; initdb's pg_hba.conf already has replication lines.
	PITR bool
	// WALSegSizeMB, when set, is initdb's --wal-segsize: the server's
	// wal_segment_size in MiB (a power of two from 1 to 1024). 1 makes a
	// test's load cross many segments in seconds.
	WALSegSizeMB int
}

// services is what this bench starts.
func (o Options) services() []Service {
	if o.PostgresOnly {
		return []Service{Postgres}
	}
	return Services()
}

// OptionsFromEnv reads the bench's settings through lookup (os.LookupEnv
// for this process's environment):
//
//	PGBACKUP_CACHE            the cache directory (default: $XDG_CACHE_HOME or
//	                          ~/.cache, then pgbackup-testbench)
//	KEEP_TESTBENCH=1          keep the directory when the bench stops
//	TESTBENCH_REDIS_PERSIST   non-empty: Redis with an append-only file
func OptionsFromEnv(lookup func(string) (string, bool)) Options {
	get := func(k string) string { v, _ := lookup(k); return v }
	o := Options{
		Cache:        get("PGBACKUP_CACHE"),
		Keep:         get("KEEP_TESTBENCH") == "1",
		RedisPersist: get("TESTBENCH_REDIS_PERSIST") != "",
	}
	if o.Cache == "" {
		base := get("XDG_CACHE_HOME")
		if base == "" {
			base = filepath.Join(get("HOME"), ".cache")
		}
		o.Cache = filepath.Join(base, "pgbackup-testbench")
	}
	return o
}

func (o Options) minioBin() string { return filepath.Join(o.Cache, "bin", minioProgram) }

// server is what the bench does with each of its servers.
type server interface {
	// create starts the server for the first time, on new ports with new
	// data, and records what it chose in the state.
	create(ctx context.Context) error
	// start starts it again with the recorded ports and data.
	start(ctx context.Context) error
	// stop stops it; it is a no-op when the server is not running.
	stop(ctx context.Context) error
	// pid is the running server's pid, checked to belong to the bench; 0
	// when it does not run.
	pid() int
	// port is where it listens, for messages.
	port() string
	// version is the server's version once created, "" when unknown.
	version() string
}

func (b *Bench) server(s Service) (server, error) {
	switch s {
	case Postgres:
		return &postgres{b: b}, nil
	case Redis:
		return &redisServer{b: b}, nil
	case MinIO:
		return &minioServer{b: b}, nil
	}
	return nil, fmt.Errorf("unknown service %v", s)
}
