package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// summaries say what each command does, for usage and help.
var summaries = map[string]struct{ args, text string }{
	"backup":     {"[NAME]", "back up a database, or with --database '*' the whole server"},
	"basebackup": {"", "base backup of a pitr target's server (--target T) for point-in-time recovery (service only)"},
	"restore":    {"NAME", "restore a backup"},
	"verify":     {"NAME", "read a backup back in full and check it"},
	"delete":     {"NAME", "delete a backup"},
	"list":       {"", "list complete backups, newest first"},
	"adopt":      {"", "take over the old manager's archives that have no manifest (--dry-run, then --plan)"},
	"status":     {"TASK_ID", "a task's state, progress and result (service only)"},
	"cancel":     {"TASK_ID", "stop a task for good (service only)"},
	"targets":    {"", "the configured targets: schedule, newest backup, RPO (service only)"},
	"wal":        {"verify", "walk a target's WAL archive in its stores (--target T); exit 1 on a gap (local only)"},
}

// Usage is pgbackup's usage text.
func Usage() string {
	var b strings.Builder
	b.WriteString("usage: pgbackup <command> [flags]\n\ncommands:\n")
	for _, c := range Commands {
		fmt.Fprintf(&b, "  %-10s %-8s %s\n", c, summaries[c].args, summaries[c].text)
	}
	b.WriteString(`
` + modesText + `
Run pgbackup <command> --help for the command's flags; both modes take the
same flags, each marked when it applies in one mode only.
Exit codes: 0 done, 1 failed, 2 usage (remote mode), 3 not found, 4 auth,
5 service unavailable.`)
	return b.String()
}

const modesText = `Where a command runs:
  local   without --url and PGBACKUP_URL: here, once, in the foreground,
          against the stores of the configuration (POSTGRES_HOST, BACKUP_DIR,
          MINIO_ENDPOINT, ... and CONFIG_FILE, as for the service).
  remote  with --url or PGBACKUP_URL: the service at that URL runs it
          (token: --token, --token-file, PGBACKUP_TOKEN or PGBACKUP_TOKEN_FILE).`

// writeHelp writes one command's help: what it does, which mode this run
// uses, and every flag with the mode it applies in.
func writeHelp(w io.Writer, cmd string, mode Mode, getenv func(string) string) {
	s := summaries[cmd]
	fmt.Fprintf(w, "usage: pgbackup %s [flags] %s\n\n%s.\n\n%s\n\n", cmd, s.args, upperFirst(s.text), modesText)
	fmt.Fprintf(w, "This run: %s\n\nflags:\n", thisRun(cmd, mode, getenv))
	for _, d := range defs {
		if !d.applies(cmd) {
			continue
		}
		head := "  --" + d.name
		if d.arg != "" {
			head += " " + d.arg
		}
		note := ""
		if d.mode != both && !slices.Contains(serviceOnly, cmd) {
			note = " [" + d.mode.String() + " only]"
		}
		fmt.Fprintf(w, "%s\n    \t%s%s\n", head, d.usage, note)
	}
}

// thisRun says which mode runs: the one line of help that depends on the
// environment.
func thisRun(cmd string, mode Mode, getenv func(string) string) string {
	switch {
	case slices.Contains(localOnly, cmd):
		return "local (" + cmd + " reads the stores directly, whatever --url or PGBACKUP_URL say)"
	case mode == Local:
		return "local (no --url, PGBACKUP_URL unset)"
	case getenv("PGBACKUP_URL") != "":
		return "remote, on the service at " + getenv("PGBACKUP_URL") + " (PGBACKUP_URL; --url overrides it)"
	case slices.Contains(serviceOnly, cmd):
		return "remote (" + cmd + " is a service command; give --url or set PGBACKUP_URL)"
	}
	return "remote, on the service at --url"
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
