// Command pgbackup runs one backup, restore, list, delete or verify in the
// foreground, without Redis or workers: for scripts, emergencies and the
// benchmark. It reads the same configuration as the service. Given a
// service URL (--url or PGBACKUP_URL) it is instead a client of the API
// (see cmd/internal/remote).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/autograph/pgbackup/cmd/internal/remote"
	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/engine"
)

const usage = `usage: pgbackup <command> [flags]

commands:
  backup  -name N [-format custom|plain|directory|tar] [-database D] [-stores S1,S2]
  restore -name N [-from S] [-target D] [-clean | -replace] [-allow-unsigned]
  list    [-stores S1,S2]
  delete  -name N [-stores S1,S2]
  verify  -name N [-from S] [-allow-unsigned]

Stores are named as configured: local (BACKUP_DIR), and minio when
MINIO_ENDPOINT is set. The default is every configured store.

Configuration comes from the environment (POSTGRES_HOST, BACKUP_DIR,
MINIO_ENDPOINT, ...) and CONFIG_FILE, as for the service.

` + remote.Usage

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if remote.Wanted(os.Args[1:], os.Getenv) {
		code := remote.Run(ctx, os.Args[1:], remote.IO{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, IsTerminal: isTerminal(os.Stderr)})
		stop()
		os.Exit(code)
	}
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pgbackup:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, usage)
		return errors.New("no command")
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	name := fs.String("name", "", "backup name")
	format := fs.String("format", "custom", "pg_dump format")
	database := fs.String("database", "", "database to back up (default POSTGRES_DB)")
	stores := fs.String("stores", "", "comma-separated stores (default: all configured)")
	from := fs.String("from", "", "store to read from (default: first holding the backup)")
	target := fs.String("target", "", "database to restore into (default POSTGRES_DB)")
	clean := fs.Bool("clean", false, "drop the archive's objects before restoring them (not for plain archives)")
	replace := fs.Bool("replace", false, "restore beside the target, check, then swap it in (the old one is kept)")
	includeGlobals := fs.Bool("include-globals", false, "backup: also store the server's roles (pg_dumpall --globals-only)")
	restoreGlobals := fs.Bool("restore-globals", false, "restore: apply the backup's roles first")
	allowUnsigned := fs.Bool("allow-unsigned", false, "restore or verify even if the manifest's signature is missing or wrong")
	progress := fs.Bool("progress", false, "print progress to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}

	cfg, err := configs.Load()
	if err != nil {
		return err
	}
	log := configs.NewLogger(cfg, "pgbackup", os.Stderr)
	eng, err := wire.Engine(ctx, cfg, log)
	if err != nil {
		return err
	}
	var report engine.ProgressFunc
	if *progress {
		report = func(p engine.Progress) {
			fmt.Fprintf(os.Stderr, "%s %s %d bytes\n", time.Now().Format(time.TimeOnly), p.Phase, p.Bytes)
		}
	}

	if cmd == "backup" && *name == "" {
		*name = "autograph_backup_" + time.Now().UTC().Format("20060102_150405")
	}
	var backupName engine.Name
	switch cmd {
	case "backup", "restore", "delete", "verify":
		if backupName, err = engine.ParseName(*name); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
	}
	var out any
	switch cmd {
	case "backup":
		out, err = eng.Backup(ctx, engine.BackupRequest{Name: backupName, Database: *database,
			Format: engine.Format(*format), Stores: remote.SplitList(*stores), IncludeGlobals: *includeGlobals, Progress: report})
	case "restore":
		out, err = eng.Restore(ctx, engine.RestoreRequest{Name: backupName, From: *from,
			TargetDatabase: *target, Clean: *clean, Replace: *replace, AllowUnsigned: *allowUnsigned, RestoreGlobals: *restoreGlobals, Progress: report})
	case "list":
		out, err = eng.List(ctx, remote.SplitList(*stores))
	case "delete":
		out, err = eng.Delete(ctx, backupName, remote.SplitList(*stores))
	case "verify":
		out, err = eng.Verify(ctx, backupName, *from, *allowUnsigned)
	default:
		fmt.Fprintln(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// isTerminal reports whether f is a terminal (progress is then redrawn in
// place rather than printed line by line).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
