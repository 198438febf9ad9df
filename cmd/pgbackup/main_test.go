package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/cmd/internal/cli"
	"github.com/autograph/pgbackup/cmd/internal/remote"
)

// runWith runs a command line with only the given environment and returns
// its exit code and stderr.
func runWith(env map[string]string, args ...string) (int, string) {
	var out, errb bytes.Buffer
	code := pgbackup(context.Background(), args, remote.IO{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	return code, errb.String()
}

// TestHelpIsOneFace runs every command's --help without and with a service
// URL: both exit 0 and list the same flags; only the line saying which
// mode runs differs.
func TestHelpIsOneFace(t *testing.T) {
	t.Parallel()
	for _, cmd := range cli.Commands {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			localCode, local := runWith(nil, cmd, "--help")
			remoteCode, remote := runWith(map[string]string{"PGBACKUP_URL": "http://backup:8080"}, cmd, "--help")
			if localCode != 0 || remoteCode != 0 {
				t.Fatalf("%s --help exit %d without a URL, %d with one; want 0 and 0\n%s\n%s", cmd, localCode, remoteCode, local, remote)
			}
			wantRemote := "This run: remote, on the service at http://backup:8080"
			if cmd == "wal" {
				wantRemote = "This run: local (wal reads the stores directly"
			}
			if !strings.Contains(remote, wantRemote) {
				t.Errorf("with PGBACKUP_URL the help does not say the service runs it:\n%s", remote)
			}
			wantLocal := "This run: local"
			switch cmd {
			case "basebackup", "status", "cancel", "targets":
				wantLocal = "This run: remote (" + cmd + " is a service command"
			case "wal":
				wantLocal = "This run: local (wal reads the stores directly"
			}
			if !strings.Contains(local, wantLocal) {
				t.Errorf("without a URL the help does not say %q:\n%s", wantLocal, local)
			}
			if a, b := withoutModeLine(local), withoutModeLine(remote); a != b {
				t.Errorf("help differs beyond the mode line:\nwithout URL:\n%s\nwith URL:\n%s", a, b)
			}
			for _, want := range []string{"--json", "--url URL", "--token TOKEN"} {
				if !strings.Contains(local, want) {
					t.Errorf("help lacks %s:\n%s", want, local)
				}
			}
		})
	}
	_, help := runWith(nil, "backup", "--help")
	for _, want := range []string{"--wait", "--timeout DURATION", "--progress", "--target T", "--include-globals"} {
		if !strings.Contains(help, want) {
			t.Errorf("backup --help lacks %s:\n%s", want, help)
		}
	}
}

func withoutModeLine(help string) string {
	var keep []string
	for _, l := range strings.Split(help, "\n") {
		if !strings.HasPrefix(l, "This run: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestExitCodesWithoutAService covers the command lines that end before
// any configuration is read or request sent.
func TestExitCodesWithoutAService(t *testing.T) {
	t.Parallel()
	url := map[string]string{"PGBACKUP_URL": "http://127.0.0.1:1", "PGBACKUP_TOKEN": "t"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want int
	}{
		{"top-level help", nil, []string{"--help"}, 0},
		{"no command", nil, nil, 1},
		{"unknown command, local", nil, []string{"frobnicate"}, 1},
		{"unknown command, remote", url, []string{"frobnicate"}, 2},
		{"unknown flag, local", nil, []string{"backup", "--no-such-flag"}, 1},
		{"unknown flag, remote", url, []string{"backup", "--no-such-flag"}, 2},
		{"local-only flag on the service", url, []string{"backup", "--progress"}, 2},
		{"remote-only flag locally", nil, []string{"backup", "--timeout", "5s"}, 1},
		{"restore without a name", url, []string{"restore"}, 2},
		{"status without an ID", url, []string{"status"}, 2},
		{"basebackup without a target", url, []string{"basebackup"}, 2},
		{"basebackup without a URL", nil, []string{"basebackup", "--target", "app"}, 2},
		{"service unreachable", url, []string{"list"}, 5},
		{"service command without a URL", nil, []string{"targets"}, 2},
	} {
		if code, stderr := runWith(tc.env, tc.args...); code != tc.want {
			t.Errorf("%s: pgbackup %v = %d, want %d\n%s", tc.name, tc.args, code, tc.want, stderr)
		}
	}
}
