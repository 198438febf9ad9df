package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Mode is where a command runs.
type Mode int

const (
	// Local runs the command here, once, against the configured stores.
	Local Mode = iota
	// Remote asks the service at --url or PGBACKUP_URL to run it.
	Remote
)

// both marks a flag that applies in either mode.
const both Mode = -1

func (m Mode) String() string {
	if m == Remote {
		return "remote"
	}
	return "local"
}

// Commands are pgbackup's commands, in the order usage lists them.
var Commands = []string{"backup", "basebackup", "restore", "verify", "delete", "list", "adopt", "status", "cancel", "targets", "wal"}

// serviceOnly are the commands only the service can run. A base backup
// is one: it is the workers' (their pg_basebackup, replication role and
// the target's WAL archive), and only the service knows which targets
// have pitr.
var serviceOnly = []string{"basebackup", "status", "cancel", "targets"}

// localOnly are the commands that read the stores directly and always run
// here: `wal verify` walks an archive "from the store alone", which is
// what it is for when the service is in doubt.
var localOnly = []string{"wal"}

// ModeOf says where args (a command and its flags) run: remotely for a
// command only the service has, with --url among the flags, or with
// PGBACKUP_URL set; locally otherwise.
func ModeOf(args []string, getenv func(string) string) Mode {
	if len(args) == 0 {
		return Local
	}
	if slices.Contains(serviceOnly, args[0]) {
		return Remote
	}
	if slices.Contains(localOnly, args[0]) {
		return Local
	}
	for _, a := range args[1:] {
		if a == "--url" || a == "-url" || strings.HasPrefix(a, "--url=") || strings.HasPrefix(a, "-url=") {
			return Remote
		}
	}
	if getenv("PGBACKUP_URL") != "" {
		return Remote
	}
	return Local
}

// Flags are one command's parsed flags; a field is zero when its flag
// was not given (or does not belong to the command).
type Flags struct {
	Command string
	// Arg is the one positional argument: a backup name, a task ID, or
	// wal's subcommand.
	Arg string

	Name, Format, Database, Stores, Target, TargetDatabase, From, Databases string
	Clean, Replace, IncludeGlobals, RestoreGlobals, AllowUnsigned, Progress bool
	Limit                                                                   int
	// DryRun and Plan are adopt's: list, or apply a dry run's list.
	DryRun bool
	Plan   string

	URL, Token, TokenFile string
	JSON, Wait            bool
	Timeout               time.Duration
}

// BackupName is --name, or the positional argument.
func (f *Flags) BackupName() string {
	if f.Name != "" {
		return f.Name
	}
	return f.Arg
}

// ErrUnknownCommand is Parse's error for a command pgbackup does not have.
var ErrUnknownCommand = errors.New("unknown command")

// UsageError is a command line Parse refuses.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usageErr(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Parse parses cmd's flags for a run in mode. Flags may come before and
// after the one positional argument (pgbackup restore NAME --clean). On
// -h or --help it writes the command's help to w and returns
// flag.ErrHelp; a flag of the other mode is a *UsageError naming it.
// getenv gives the help the service URL it names.
func Parse(cmd string, args []string, mode Mode, getenv func(string) string, w io.Writer) (*Flags, error) {
	if !slices.Contains(Commands, cmd) {
		return nil, fmt.Errorf("%w %q", ErrUnknownCommand, cmd)
	}
	f := &Flags{Command: cmd}
	fs := newFlagSet(cmd, f, mode)
	fs.SetOutput(w)
	fs.Usage = func() { writeHelp(w, cmd, mode, getenv) }
	// The standard parser stops at the first non-flag; parse again after it.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageErr("%s: %v", cmd, err)
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) > 1 {
		return nil, usageErr("%s: unexpected arguments %q", cmd, rest[1:])
	}
	if len(rest) == 1 {
		f.Arg = rest[0]
	}
	var wrong error
	fs.Visit(func(fl *flag.Flag) {
		if d, ok := defFor(cmd, fl.Name); ok && d.mode != both && d.mode != mode && wrong == nil {
			wrong = usageErr("%s --%s applies only in %s mode (%s)", cmd, fl.Name, d.mode, modeHint(d.mode))
		}
	})
	return f, wrong
}

func modeHint(m Mode) string {
	if m == Remote {
		return "give --url or set PGBACKUP_URL"
	}
	return "without --url and PGBACKUP_URL"
}

func newFlagSet(cmd string, f *Flags, mode Mode) *flag.FlagSet {
	fs := flag.NewFlagSet("pgbackup "+cmd, flag.ContinueOnError)
	for _, d := range defs {
		if d.applies(cmd) {
			d.bind(fs, f, d.name, d.usage)
		}
	}
	if mode == Local {
		// The local mode once took every one of these flags with every
		// command, ignoring those the command had no use for; scripts may
		// still pass them. They are accepted, unlisted, and still ignored.
		for _, d := range legacyLocal {
			if fs.Lookup(d.name) == nil {
				d.bind(fs, &Flags{}, d.name, "")
			}
		}
	}
	return fs
}
