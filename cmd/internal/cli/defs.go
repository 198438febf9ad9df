package cli

import (
	"flag"
	"slices"
	"strings"
)

// def is one flag of one or more commands.
type def struct {
	name string
	// cmds are the commands that have the flag; nil means all.
	cmds []string
	// mode is the mode the flag applies in, or both.
	mode  Mode
	arg   string // the value's placeholder in help; "" for a switch
	usage string
	bind  func(fs *flag.FlagSet, f *Flags, name, usage string)
}

func (d def) applies(cmd string) bool { return d.cmds == nil || slices.Contains(d.cmds, cmd) }

func str(field func(*Flags) *string) func(*flag.FlagSet, *Flags, string, string) {
	return func(fs *flag.FlagSet, f *Flags, name, usage string) { fs.StringVar(field(f), name, "", usage) }
}

func boolean(field func(*Flags) *bool) func(*flag.FlagSet, *Flags, string, string) {
	return func(fs *flag.FlagSet, f *Flags, name, usage string) { fs.BoolVar(field(f), name, false, usage) }
}

func cmds(s string) []string { return strings.Fields(s) }

// tasks are the commands that make (or follow) a task.
const tasks = "backup basebackup restore verify delete adopt status"

// defs are every command's flags, in the order help lists them. A flag of
// one mode only is still listed for both, with its mode.
var defs = []def{
	{name: "name", cmds: cmds("backup"), mode: both, arg: "N", usage: "backup name, or give it as the argument (default generated)",
		bind: str(func(f *Flags) *string { return &f.Name })},
	{name: "name", cmds: cmds("restore verify delete"), mode: both, arg: "N", usage: "the backup, or give it as the argument",
		bind: str(func(f *Flags) *string { return &f.Name })},
	{name: "format", cmds: cmds("backup"), mode: both, arg: "F", usage: "custom, plain, directory or tar (default custom, or the target's)",
		bind: str(func(f *Flags) *string { return &f.Format })},
	{name: "database", cmds: cmds("backup"), mode: both, arg: "D", usage: "database to back up, or * for the whole server (default POSTGRES_DB, or the target's)",
		bind: str(func(f *Flags) *string { return &f.Database })},
	{name: "database", cmds: cmds("list"), mode: Remote, arg: "D", usage: "only this database's backups",
		bind: str(func(f *Flags) *string { return &f.Database })},
	{name: "stores", cmds: cmds("backup delete list"), mode: both, arg: "S1,S2", usage: "comma-separated stores (default every configured store)",
		bind: str(func(f *Flags) *string { return &f.Stores })},
	{name: "target", cmds: cmds("backup"), mode: Remote, arg: "T", usage: "configured target to back up (its database, format and stores)",
		bind: str(func(f *Flags) *string { return &f.Target })},
	{name: "target", cmds: cmds("basebackup"), mode: Remote, arg: "T", usage: "the target (with pitr: true) whose server to copy",
		bind: str(func(f *Flags) *string { return &f.Target })},
	{name: "target", cmds: cmds("list"), mode: Remote, arg: "T", usage: "only this target's backups",
		bind: str(func(f *Flags) *string { return &f.Target })},
	{name: "target", cmds: cmds("wal"), mode: Local, arg: "T", usage: "the target whose WAL archive (wal/T/ in its stores) to walk",
		bind: str(func(f *Flags) *string { return &f.Target })},
	{name: "include-globals", cmds: cmds("backup"), mode: both, usage: "also store the server's roles (pg_dumpall --globals-only)",
		bind: boolean(func(f *Flags) *bool { return &f.IncludeGlobals })},
	{name: "from", cmds: cmds("restore verify"), mode: both, arg: "S", usage: "store to read (default the first holding the backup)",
		bind: str(func(f *Flags) *string { return &f.From })},
	{name: "target-database", cmds: cmds("restore"), mode: both, arg: "D", usage: "database to restore into (default: locally POSTGRES_DB, on the service the backup's)",
		bind: str(func(f *Flags) *string { return &f.TargetDatabase })},
	{name: "target", cmds: cmds("restore"), mode: Local, arg: "D", usage: "the same as --target-database (its older name)",
		bind: str(func(f *Flags) *string { return &f.Target })},
	{name: "databases", cmds: cmds("restore"), mode: Remote, arg: "D1,D2", usage: "whole-server backups: the databases to restore (default all)",
		bind: str(func(f *Flags) *string { return &f.Databases })},
	{name: "clean", cmds: cmds("restore"), mode: both, usage: "drop the archive's objects before restoring them (not for plain archives)",
		bind: boolean(func(f *Flags) *bool { return &f.Clean })},
	{name: "replace", cmds: cmds("restore"), mode: both, usage: "restore beside the target, check, then swap it in (the old one is kept)",
		bind: boolean(func(f *Flags) *bool { return &f.Replace })},
	{name: "restore-globals", cmds: cmds("restore"), mode: both, usage: "apply the backup's roles first",
		bind: boolean(func(f *Flags) *bool { return &f.RestoreGlobals })},
	{name: "allow-unsigned", cmds: cmds("restore verify"), mode: both, usage: "accept a manifest whose signature is missing or wrong",
		bind: boolean(func(f *Flags) *bool { return &f.AllowUnsigned })},
	{name: "dry-run", cmds: cmds("adopt"), mode: both, usage: "list what would be adopted and skipped, and the plan to adopt exactly that; change nothing",
		bind: boolean(func(f *Flags) *bool { return &f.DryRun })},
	{name: "plan", cmds: cmds("adopt"), mode: both, arg: "DIGEST", usage: "adopt exactly what the dry run with this plan listed (refused if the archives changed since)",
		bind: str(func(f *Flags) *string { return &f.Plan })},
	{name: "limit", cmds: cmds("list"), mode: Remote, arg: "N", usage: "at most this many (newest first)",
		bind: func(fs *flag.FlagSet, f *Flags, name, usage string) { fs.IntVar(&f.Limit, name, 0, usage) }},
	{name: "progress", cmds: cmds("backup restore"), mode: Local, usage: "print progress lines to stderr (on the service, --wait shows progress)",
		bind: boolean(func(f *Flags) *bool { return &f.Progress })},
	{name: "wait", cmds: cmds(tasks), mode: both, usage: "follow the task until it finishes, with progress on stderr (a local run always waits)",
		bind: boolean(func(f *Flags) *bool { return &f.Wait })},
	{name: "timeout", cmds: cmds(tasks), mode: Remote, arg: "DURATION", usage: "with --wait, give up after this long (exit 1; the task goes on); 0 waits for ever",
		bind: func(fs *flag.FlagSet, f *Flags, name, usage string) { fs.DurationVar(&f.Timeout, name, 0, usage) }},
	{name: "json", mode: both, usage: "print machine-readable JSON on stdout (a local run always does)",
		bind: boolean(func(f *Flags) *bool { return &f.JSON })},
	{name: "url", mode: Remote, arg: "URL", usage: "service URL, e.g. http://backup:8080 (default $PGBACKUP_URL); giving it runs the command there",
		bind: str(func(f *Flags) *string { return &f.URL })},
	{name: "token", mode: Remote, arg: "TOKEN", usage: "API token (default $PGBACKUP_TOKEN, or the file $PGBACKUP_TOKEN_FILE)",
		bind: str(func(f *Flags) *string { return &f.Token })},
	{name: "token-file", mode: Remote, arg: "FILE", usage: "file holding the API token",
		bind: str(func(f *Flags) *string { return &f.TokenFile })},
}

// legacyLocal are the flags the local mode used to accept with every
// command; see newFlagSet.
var legacyLocal = func() []def {
	var out []def
	ignored := func(fs *flag.FlagSet, _ *Flags, name, _ string) { fs.String(name, "", "") }
	ignoredBool := func(fs *flag.FlagSet, _ *Flags, name, _ string) { fs.Bool(name, false, "") }
	for _, n := range cmds("name format database stores from target") {
		out = append(out, def{name: n, bind: ignored})
	}
	for _, n := range cmds("clean replace include-globals restore-globals allow-unsigned progress") {
		out = append(out, def{name: n, bind: ignoredBool})
	}
	return out
}()

// defFor finds cmd's flag called name.
func defFor(cmd, name string) (def, bool) {
	for _, d := range defs {
		if d.name == name && d.applies(cmd) {
			return d, true
		}
	}
	return def{}, false
}
