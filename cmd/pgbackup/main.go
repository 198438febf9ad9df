// Command pgbackup runs one backup, restore, list, delete or verify. Without
// a service URL it runs locally, in the foreground, without Redis or
// workers: for scripts, emergencies and the benchmark, reading the same
// configuration as the service. Given a service URL (--url or
// PGBACKUP_URL) it is instead a client of the API (cmd/internal/remote).
// Both modes share one set of flags per command (cmd/internal/cli).
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

	"github.com/autograph/pgbackup/cmd/internal/cli"
	"github.com/autograph/pgbackup/cmd/internal/remote"
	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/engine"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := pgbackup(ctx, os.Args[1:], remote.IO{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, IsTerminal: isTerminal(os.Stderr)})
	stop()
	os.Exit(code)
}

// pgbackup runs one command line in the mode it asks for and returns the
// exit code.
func pgbackup(ctx context.Context, args []string, o remote.IO) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(o.Stderr, cli.Usage())
		return 0
	}
	if cli.ModeOf(args, o.Getenv) == cli.Remote {
		return remote.Run(ctx, args, o)
	}
	err := runLocal(ctx, args, o)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, cli.ErrUnknownCommand):
		fmt.Fprintln(o.Stderr, cli.Usage())
	}
	fmt.Fprintln(o.Stderr, "pgbackup:", err)
	return 1
}

// runLocal runs the command here against the configured stores and
// prints its outcome as JSON.
func runLocal(ctx context.Context, args []string, o remote.IO) error {
	if len(args) == 0 {
		fmt.Fprintln(o.Stderr, cli.Usage())
		return errors.New("no command")
	}
	f, err := cli.Parse(args[0], args[1:], cli.Local, o.Getenv, o.Stderr)
	if err != nil {
		return err
	}
	setup, err := wire.Load(wire.Worker)
	if err != nil {
		return err
	}
	cfg := setup.Config
	log := configs.NewLogger(cfg, "pgbackup", o.Stderr)
	if f.Command == "wal" {
		return runWAL(ctx, setup, f, log, o)
	}
	eng, err := wire.Engine(ctx, setup, log)
	if err != nil {
		return err
	}
	var report engine.ProgressFunc
	if f.Progress {
		report = func(p engine.Progress) {
			fmt.Fprintf(o.Stderr, "%s %s %d bytes\n", time.Now().Format(time.TimeOnly), p.Phase, p.Bytes)
		}
	}
	if f.Command == "adopt" {
		// The targets name whose scheduled backups the old scheduler's are.
		return printJSON(o, eng.Adopt)(ctx, engine.AdoptRequest{DryRun: f.DryRun, Plan: f.Plan, ScheduledTarget: setup.Targets.OfDatabase})
	}
	out, err := runEngine(ctx, eng, f, report)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(o.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func runEngine(ctx context.Context, eng *engine.Engine, f *cli.Flags, report engine.ProgressFunc) (any, error) {
	raw := f.BackupName()
	if f.Command == "backup" && raw == "" {
		raw = "autograph_backup_" + time.Now().UTC().Format("20060102_150405")
	}
	// The name is parsed once here, at the edge; the engine takes only
	// parsed names.
	var name engine.Name
	switch f.Command {
	case "backup", "restore", "delete", "verify":
		var err error
		if name, err = engine.ParseName(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Command, err)
		}
	}
	switch f.Command {
	case "backup":
		req, err := localBackupRequest(f)
		if err != nil {
			return nil, err
		}
		req.Name, req.Progress = name, report
		return summary(eng.Backup(ctx, req))
	case "restore":
		req, err := localRestoreRequest(f)
		if err != nil {
			return nil, err
		}
		req.Name, req.Progress = name, report
		return eng.Restore(ctx, req)
	case "list":
		return eng.List(ctx, remote.SplitList(f.Stores))
	case "delete":
		return eng.Delete(ctx, name, remote.SplitList(f.Stores))
	case "verify":
		return summary(eng.Verify(ctx, name, f.From, f.AllowUnsigned))
	}
	return nil, fmt.Errorf("%s runs only on the service: give --url or set PGBACKUP_URL", f.Command)
}

// printJSON runs an engine call and prints its outcome as JSON, as every
// local command does.
func printJSON[R, O any](o remote.IO, call func(context.Context, R) (O, error)) func(context.Context, R) error {
	return func(ctx context.Context, req R) error {
		out, err := call(ctx, req)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(o.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
}

// localBackupRequest parses the backup flags (database or "*", format)
// into the engine's request, here at the edge; the caller adds the name.
func localBackupRequest(f *cli.Flags) (engine.BackupRequest, error) {
	db, whole, err := engine.ParseBackupDatabase(f.Database)
	if err != nil {
		return engine.BackupRequest{}, fmt.Errorf("backup: %w", err)
	}
	format, err := engine.ParseFormat(f.Format)
	if err != nil {
		return engine.BackupRequest{}, fmt.Errorf("backup: %w", err)
	}
	return engine.BackupRequest{Database: db, WholeServer: whole, Format: format,
		Stores: remote.SplitList(f.Stores), IncludeGlobals: f.IncludeGlobals}, nil
}

// localRestoreRequest parses the restore flags (target database) into the
// engine's request; the caller adds the name.
func localRestoreRequest(f *cli.Flags) (engine.RestoreRequest, error) {
	req := engine.RestoreRequest{From: f.From, Clean: f.Clean, Replace: f.Replace,
		AllowUnsigned: f.AllowUnsigned, RestoreGlobals: f.RestoreGlobals}
	target := f.TargetDatabase
	if target == "" {
		target = f.Target // the flag's older name
	}
	if target != "" {
		id, err := engine.ParseDatabase(target)
		if err != nil {
			return engine.RestoreRequest{}, fmt.Errorf("restore: target %w", err)
		}
		req.TargetDatabase = id
	}
	return req, nil
}

// isTerminal reports whether f is a terminal (progress is then redrawn in
// place rather than printed line by line).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// summary prints a manifest without its chunk sums, which only a restore
// reads and which grow with the archive.
func summary(m *engine.Manifest, err error) (any, error) {
	if m == nil {
		return nil, err
	}
	return m.Summary(), err
}
