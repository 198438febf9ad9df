package remote

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// Usage is the remote commands' summary, for pgbackup's usage text.
const Usage = `remote commands (talk to a running service; --url or PGBACKUP_URL, and
--token, --token-file, PGBACKUP_TOKEN or PGBACKUP_TOKEN_FILE):
  backup  [--name N] [--format F] [--database D|*] [--stores S1,S2] [--target T] [--include-globals] [--wait]
  restore --name N [--from S] [--target-database D] [--clean | --replace] [--databases D1,D2] [--restore-globals] [--allow-unsigned] [--wait]
  verify  --name N [--from S] [--allow-unsigned] [--wait]
  delete  --name N [--stores S1,S2] [--wait]
  list    [--stores S1,S2] [--database D] [--target T] [--limit N]
  status  TASK_ID [--wait]
  cancel  TASK_ID
  targets
Every command takes --json and --help. Exit codes: 0 done, 1 task failed,
2 usage, 3 not found, 4 auth, 5 service unavailable.`

type taskAccepted struct {
	TaskID     string `json:"task_id"`
	BackupName string `json:"backup_name,omitempty"`
	StatusURL  string `json:"status_url"`
}

func run(ctx context.Context, args []string, o IO) error {
	if len(args) == 0 {
		fmt.Fprintln(o.Stderr, Usage)
		return fail(ExitUsage, "")
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("pgbackup "+cmd, flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	var c common
	str := func(name, usage string) *string { return fs.String(name, "", usage) }
	boolean := func(name, usage string) *bool { return fs.Bool(name, false, usage) }
	var body func() (method, path string, payload any, err error)
	waits := true
	positional := ""
	switch cmd {
	case "backup":
		name, format, db := str("name", "backup name (default generated)"), str("format", "custom, plain, directory or tar"), str("database", "database, or * for the whole server")
		stores, target, globals := str("stores", "comma-separated stores (default all)"), str("target", "configured target to back up"), boolean("include-globals", "also store roles")
		body = func() (string, string, any, error) {
			p := map[string]any{}
			setStr(p, "backup_name", *name, positional)
			setStr(p, "format", *format, "")
			setStr(p, "database", *db, "")
			setStr(p, "target", *target, "")
			if *stores != "" {
				p["stores"] = SplitList(*stores)
			}
			if *globals {
				p["include_globals"] = true
			}
			return "POST", "/api/admin/backup/create", p, nil
		}
	case "restore":
		name, from, target, dbs := str("name", "backup to restore"), str("from", "store to read"), str("target-database", "database to restore into (default the backup's)"), str("databases", "whole-server backups: databases to restore (default all)")
		clean, replace, globals, unsigned := boolean("clean", "drop the archive's objects first"), boolean("replace", "restore beside, check, swap in"), boolean("restore-globals", "apply the backup's roles first"), boolean("allow-unsigned", "accept an unsigned manifest")
		body = func() (string, string, any, error) {
			p := map[string]any{}
			setStr(p, "backup_name", *name, positional)
			if p["backup_name"] == nil {
				return "", "", nil, fail(ExitUsage, "restore: --name is required")
			}
			setStr(p, "from", *from, "")
			setStr(p, "target_database", *target, "")
			if *dbs != "" {
				p["databases"] = SplitList(*dbs)
			}
			for k, v := range map[string]bool{"clean": *clean, "replace": *replace, "restore_globals": *globals, "allow_unsigned": *unsigned} {
				if v {
					p[k] = true
				}
			}
			return "POST", "/api/admin/backup/restore", p, nil
		}
	case "verify":
		name, from, unsigned := str("name", "backup to verify"), str("from", "store to read"), boolean("allow-unsigned", "accept an unsigned manifest")
		body = func() (string, string, any, error) {
			n := first(*name, positional)
			if n == "" {
				return "", "", nil, fail(ExitUsage, "verify: --name is required")
			}
			p := map[string]any{}
			setStr(p, "from", *from, "")
			if *unsigned {
				p["allow_unsigned"] = true
			}
			return "POST", "/api/admin/backup/" + url.PathEscape(n) + "/verify", p, nil
		}
	case "delete":
		name, stores := str("name", "backup to delete"), str("stores", "comma-separated stores (default all)")
		body = func() (string, string, any, error) {
			n := first(*name, positional)
			if n == "" {
				return "", "", nil, fail(ExitUsage, "delete: --name is required")
			}
			p := map[string]any{}
			if *stores != "" {
				p["stores"] = SplitList(*stores)
			}
			return "DELETE", "/api/admin/backup/" + url.PathEscape(n), p, nil
		}
	case "status":
		body = func() (string, string, any, error) {
			if positional == "" {
				return "", "", nil, fail(ExitUsage, "status: give a task ID")
			}
			return "GET", "", nil, nil
		}
	case "list", "targets", "cancel":
		waits = false
	default:
		fmt.Fprintln(o.Stderr, Usage)
		return fail(ExitUsage, "unknown command %q", cmd)
	}
	var listStores, listDB, listTarget *string
	var listLimit *int
	if cmd == "list" {
		listStores, listDB, listTarget = str("stores", "comma-separated stores (default all)"), str("database", "only this database's backups"), str("target", "only this target's backups")
		listLimit = fs.Int("limit", 0, "at most this many (newest first)")
	}
	c.register(fs, waits)
	// Flags may come before or after the one positional argument
	// (pgbackup restore NAME --clean): the standard parser stops at the
	// first non-flag, so parse again after it.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return err
			}
			return fail(ExitUsage, "")
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) > 1 {
		return fail(ExitUsage, "%s: unexpected arguments %q", cmd, rest[1:])
	}
	if len(rest) == 1 {
		positional = rest[0]
	}
	cl, err := c.client(o)
	if err != nil {
		return err
	}
	switch cmd {
	case "list":
		q := url.Values{}
		for k, v := range map[string]string{"stores": *listStores, "database": *listDB, "target": *listTarget} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if *listLimit > 0 {
			q.Set("limit", fmt.Sprint(*listLimit))
		}
		path := "/api/admin/backup/list"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		return list(ctx, cl, path, c.json, o.Stdout)
	case "targets":
		return targets(ctx, cl, c.json, o.Stdout)
	case "cancel":
		if positional == "" {
			return fail(ExitUsage, "cancel: give a task ID")
		}
		var out map[string]any
		if err := cl.do(ctx, "POST", "/api/admin/tasks/"+url.PathEscape(positional)+"/cancel", nil, &out); err != nil {
			return err
		}
		return print(o.Stdout, c.json, out, fmt.Sprintf("task %s: %v", positional, out["state"]))
	}
	method, path, payload, err := body()
	if err != nil {
		return err
	}
	taskID := positional
	if cmd != "status" {
		var acc taskAccepted
		if err := cl.do(ctx, method, path, payload, &acc); err != nil {
			return err
		}
		taskID = acc.TaskID
		if c.wait && !c.json {
			fmt.Fprintf(o.Stderr, "task %s enqueued\n", acc.TaskID)
		}
		if !c.wait {
			line := "task " + acc.TaskID + " enqueued"
			if acc.BackupName != "" {
				line += " (backup " + acc.BackupName + ")"
			}
			return print(o.Stdout, c.json, acc, line)
		}
	}
	if !c.wait {
		st, err := getTask(ctx, cl, taskID)
		if err != nil {
			return err
		}
		return print(o.Stdout, c.json, st.raw, describe(st))
	}
	return follow(ctx, cl, taskID, c, o)
}

func setStr(p map[string]any, key, v, fallback string) {
	if v = first(v, fallback); v != "" {
		p[key] = v
	}
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

func list(ctx context.Context, cl *client, path string, asJSON bool, w io.Writer) error {
	var out struct {
		Backups []struct {
			Name      string    `json:"backup_name"`
			Format    string    `json:"format"`
			Database  string    `json:"database"`
			Size      int64     `json:"size_bytes"`
			CreatedAt time.Time `json:"created_at"`
			Locations []string  `json:"locations"`
			Kind      string    `json:"kind"`
		} `json:"backups"`
	}
	var raw json.RawMessage
	if err := cl.do(ctx, "GET", path, nil, &raw); err != nil {
		return err
	}
	if asJSON {
		return print(w, true, raw, "")
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDATABASE\tFORMAT\tSIZE\tCREATED\tLOCATIONS")
	for _, b := range out.Backups {
		db := b.Database
		if b.Kind == "bucket" {
			db = "(bucket)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, db, b.Format, human(b.Size), b.CreatedAt.Format(time.RFC3339), strings.Join(b.Locations, ","))
	}
	return tw.Flush()
}

func targets(ctx context.Context, cl *client, asJSON bool, w io.Writer) error {
	var raw json.RawMessage
	if err := cl.do(ctx, "GET", "/api/admin/targets", nil, &raw); err != nil {
		return err
	}
	if asJSON {
		return print(w, true, raw, "")
	}
	var out struct {
		Targets []struct {
			Name     string `json:"name"`
			Database string `json:"database"`
			Schedule string `json:"schedule"`
			Newest   *struct {
				Name string `json:"backup_name"`
			} `json:"newest_backup"`
			RPOMet *bool `json:"rpo_met"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tDATABASE\tSCHEDULE\tNEWEST\tRPO")
	for _, t := range out.Targets {
		newest, rpo := "-", "-"
		if t.Newest != nil {
			newest = t.Newest.Name
		}
		if t.RPOMet != nil {
			rpo = map[bool]string{true: "met", false: "MISSED"}[*t.RPOMet]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Database, first(t.Schedule, "-"), newest, rpo)
	}
	return tw.Flush()
}
