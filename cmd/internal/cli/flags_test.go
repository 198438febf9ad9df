package cli

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		mode    Mode
		args    []string
		check   func(*Flags) bool
		wantErr string
	}{
		{"name as the argument, flags around it", Remote, []string{"restore", "--clean", "n1", "--from", "s"},
			func(f *Flags) bool { return f.BackupName() == "n1" && f.Clean && f.From == "s" }, ""},
		{"--name wins over the argument", Local, []string{"verify", "--name", "a", "b"},
			func(f *Flags) bool { return f.BackupName() == "a" }, ""},
		{"old local flags still accepted", Local, []string{"list", "-name", "x", "-clean", "-progress"},
			func(f *Flags) bool { return f.Name == "" }, ""},
		{"local restore --target", Local, []string{"restore", "n", "-target", "copy"},
			func(f *Flags) bool { return f.Target == "copy" }, ""},
		{"--wait and --json in both modes", Local, []string{"backup", "--wait", "--json"},
			func(f *Flags) bool { return f.Wait && f.JSON }, ""},
		{"remote-only flag locally", Local, []string{"list", "--limit", "3"}, nil, "--limit applies only in remote mode"},
		{"local-only flag remotely", Remote, []string{"restore", "n", "--target", "x"}, nil, "--target applies only in local mode"},
		{"old local flags unknown remotely", Remote, []string{"list", "--clean"}, nil, "not defined"},
		{"two arguments", Remote, []string{"delete", "a", "b"}, nil, "unexpected arguments"},
		{"unknown command", Local, []string{"frobnicate"}, nil, "unknown command"},
	} {
		f, err := Parse(tc.args[0], tc.args[1:], tc.mode, noEnv, io.Discard)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr == "" && !tc.check(f):
			t.Errorf("%s: parsed %+v", tc.name, f)
		}
	}
}

func TestHelpListsEveryFlagOnce(t *testing.T) {
	t.Parallel()
	for _, cmd := range Commands {
		var b strings.Builder
		if _, err := Parse(cmd, []string{"-h"}, Local, noEnv, &b); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s -h: %v", cmd, err)
		}
		fs := newFlagSet(cmd, &Flags{}, Remote)
		fs.VisitAll(func(fl *flag.Flag) {
			if n := strings.Count(b.String(), "  --"+fl.Name+"\n") + strings.Count(b.String(), "  --"+fl.Name+" "); n != 1 {
				t.Errorf("%s help lists --%s %d times", cmd, fl.Name, n)
			}
		})
	}
}
