package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/autograph/pgbackup/cmd/internal/cli"
	"github.com/autograph/pgbackup/handlers/client"
)

func run(ctx context.Context, args []string, o IO) error {
	if len(args) == 0 {
		fmt.Fprintln(o.Stderr, cli.Usage())
		return fail(ExitUsage, "")
	}
	f, err := cli.Parse(args[0], args[1:], cli.Remote, o.Getenv, o.Stderr)
	var ue *cli.UsageError
	switch {
	case errors.Is(err, cli.ErrUnknownCommand):
		fmt.Fprintln(o.Stderr, cli.Usage())
		return fail(ExitUsage, "%v", err)
	case errors.As(err, &ue):
		return fail(ExitUsage, "%s", ue.Msg)
	case err != nil:
		return err
	}
	if err := checkArgs(f); err != nil {
		return err
	}
	cl, err := connect(f, o)
	if err != nil {
		return err
	}
	return exitFor(dispatch(ctx, cl, f, o))
}

// checkArgs refuses, before any request, a command without the name or
// task ID it needs.
func checkArgs(f *cli.Flags) error {
	switch f.Command {
	case "restore", "verify", "delete":
		if f.BackupName() == "" {
			return fail(ExitUsage, "%s: --name is required", f.Command)
		}
	case "basebackup":
		if f.Target == "" {
			return fail(ExitUsage, "basebackup: --target is required")
		}
	case "status", "cancel":
		if f.Arg == "" {
			return fail(ExitUsage, "%s: give a task ID", f.Command)
		}
	case "adopt":
		if f.DryRun == (f.Plan != "") {
			return fail(ExitUsage, "adopt: give --dry-run, or --plan with the plan a dry run printed")
		}
	}
	return nil
}

func dispatch(ctx context.Context, cl *client.Client, f *cli.Flags, o IO) error {
	switch f.Command {
	case "list":
		return list(ctx, cl, f, o.Stdout)
	case "targets":
		return targets(ctx, cl, f.JSON, o.Stdout)
	case "cancel":
		var raw client.Response
		acc, err := cl.CancelTask(ctx, f.Arg, client.WithResponse(&raw))
		if err != nil {
			return err
		}
		return print(o.Stdout, f.JSON, json.RawMessage(raw.Body), fmt.Sprintf("task %s: %s", f.Arg, acc.State))
	case "status":
		if f.Wait {
			return follow(ctx, cl, f.Arg, f, o)
		}
		var raw client.Response
		t, err := cl.Task(ctx, f.Arg, client.WithResponse(&raw))
		if err != nil {
			return err
		}
		return print(o.Stdout, f.JSON, json.RawMessage(raw.Body), describe(t))
	}
	acc, err := enqueue(ctx, cl, f)
	if err != nil {
		return err
	}
	if f.Command == "adopt" {
		// Its answer is the list (and the plan): nothing to do without it.
		f.Wait = true
	}
	if !f.Wait {
		line := "task " + acc.TaskID + " enqueued"
		if acc.BackupName != "" {
			line += " (backup " + acc.BackupName + ")"
		}
		return print(o.Stdout, f.JSON, acc, line)
	}
	if !f.JSON {
		fmt.Fprintf(o.Stderr, "task %s enqueued\n", acc.TaskID)
	}
	return follow(ctx, cl, acc.TaskID, f, o)
}

// enqueue sends the request of a command that makes a task.
func enqueue(ctx context.Context, cl *client.Client, f *cli.Flags) (*client.TaskAccepted, error) {
	switch f.Command {
	case "backup":
		req := client.CreateBackupRequest{BackupName: f.BackupName(), Format: f.Format, Database: f.Database,
			Stores: SplitList(f.Stores), Target: f.Target}
		if f.IncludeGlobals {
			req.IncludeGlobals = new(true)
		}
		return cl.CreateBackup(ctx, req)
	case "restore":
		return cl.RestoreBackup(ctx, client.RestoreBackupRequest{BackupName: f.BackupName(), From: f.From,
			TargetDatabase: f.TargetDatabase, Databases: SplitList(f.Databases), Clean: f.Clean, Replace: f.Replace,
			RestoreGlobals: f.RestoreGlobals, AllowUnsigned: f.AllowUnsigned})
	case "verify":
		return cl.VerifyBackup(ctx, f.BackupName(), client.VerifyBackupRequest{From: f.From, AllowUnsigned: f.AllowUnsigned})
	case "delete":
		return cl.DeleteBackup(ctx, f.BackupName(), client.DeleteBackupRequest{Stores: SplitList(f.Stores)})
	case "adopt":
		return cl.AdoptBackups(ctx, client.AdoptRequest{DryRun: f.DryRun, Plan: f.Plan})
	case "basebackup":
		return cl.BaseBackupTarget(ctx, f.Target)
	}
	return nil, fail(ExitUsage, "unknown command %q", f.Command)
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// SplitList splits a comma-separated flag value, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// print writes v as JSON, or the human line.
func print(w io.Writer, asJSON bool, v any, line string) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func list(ctx context.Context, cl *client.Client, f *cli.Flags, w io.Writer) error {
	var raw client.Response
	out, err := cl.ListBackups(ctx, client.ListBackupsOptions{Stores: SplitList(f.Stores), Database: f.Database,
		Target: f.Target, Limit: f.Limit}, client.WithResponse(&raw))
	if err != nil {
		return err
	}
	if f.JSON {
		return print(w, true, json.RawMessage(raw.Body), "")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDATABASE\tFORMAT\tSIZE\tCREATED\tLOCATIONS")
	for _, b := range out.Backups {
		db := b.Database
		if b.Kind == "bucket" {
			db = "(bucket)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.BackupName, db, b.Format, human(b.SizeBytes), b.CreatedAt.Format(time.RFC3339), strings.Join(b.Locations, ","))
	}
	return tw.Flush()
}

func targets(ctx context.Context, cl *client.Client, asJSON bool, w io.Writer) error {
	var raw client.Response
	out, err := cl.Targets(ctx, client.WithResponse(&raw))
	if err != nil {
		return err
	}
	if asJSON {
		return print(w, true, json.RawMessage(raw.Body), "")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tDATABASE\tSCHEDULE\tNEWEST\tRPO")
	for _, t := range out.Targets {
		newest, rpo := "-", "-"
		if t.NewestBackup != nil {
			newest = t.NewestBackup.BackupName
		}
		if t.RPOMet != nil {
			rpo = map[bool]string{true: "met", false: "MISSED"}[*t.RPOMet]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Database, first(t.Schedule, "-"), newest, rpo)
	}
	return tw.Flush()
}
