package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/autograph/pgbackup/internal/testbench"
)

// cli runs pgbackup against the cluster's API and returns its exit code,
// stdout and stderr.
func (c *cluster) cli(env []string, args ...string) (int, string, string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "pgbackup"), args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "PGBACKUP_URL=" + c.apiURL, "PGBACKUP_TOKEN=" + adminToken}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	c.t.Fatalf("pgbackup %v: %v", args, err)
	return -1, "", ""
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestCLIAgainstTheAPI drives the remote commands of pgbackup through the
// real API and workers, checking outputs and exit codes.
func TestCLIAgainstTheAPI(t *testing.T) {
	t.Parallel()
	// No retries: the failing backup below should fail at once.
	c := newCluster(t, "TASK_MAX_RETRY=0")
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (v int)`, `INSERT INTO t SELECT generate_series(1, 250)`)
	want := c.env.Fingerprint(t, c.source)
	c.startAPI()
	c.start("worker", "worker")

	code, stdout, stderr := c.cli(nil, "backup", "--name", "cli-1", "--wait")
	if code != 0 || lastLine(stderr) != "done" {
		t.Fatalf("backup --wait = %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	code, stdout, _ = c.cli(nil, "list", "--json")
	var list struct {
		Backups []struct {
			Name string `json:"backup_name"`
		} `json:"backups"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &list) != nil || len(list.Backups) != 1 || list.Backups[0].Name != "cli-1" {
		t.Fatalf("list --json = %d %s", code, stdout)
	}
	if code, stdout, _ = c.cli(nil, "list"); code != 0 || !strings.Contains(stdout, "cli-1") || !strings.HasPrefix(stdout, "NAME") {
		t.Fatalf("list = %d %s", code, stdout)
	}

	target := c.source + "_cli"
	c.env.DropDBOnCleanup(t, target)
	code, stdout, stderr = c.cli(nil, "restore", "cli-1", "--target-database", target, "--wait", "--json")
	var st struct {
		State string `json:"state"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil || st.State != "completed" {
		t.Fatalf("restore --wait --json = %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, target), want); diff != "" {
		t.Fatalf("restored database differs:\n%s", diff)
	}

	// A task that fails: exit 1, the last line names the error.
	code, _, stderr = c.cli(nil, "backup", "--name", "cli-bad", "--database", "no_such_database_here", "--wait")
	if code != 1 || !strings.HasPrefix(lastLine(stderr), "error: ") {
		t.Fatalf("failing backup --wait = %d, stderr %s", code, stderr)
	}
	for _, tc := range []struct {
		env  []string
		args []string
		want int
	}{
		{nil, []string{"verify", "--name", "no-such-backup"}, 3},
		{nil, []string{"status", "no-such-task"}, 3},
		{[]string{"PGBACKUP_TOKEN=not-a-token-at-all"}, []string{"list"}, 4},
		{[]string{"PGBACKUP_URL=http://127.0.0.1:1"}, []string{"list"}, 5},
		{nil, []string{"backup", "--no-such-flag"}, 2},
		{nil, []string{"restore"}, 2},
		{nil, []string{"backup", "--name", "bad name!"}, 2},
		{nil, []string{"targets"}, 0},
		{nil, []string{"delete", "--help"}, 0},
	} {
		if code, stdout, stderr := c.cli(tc.env, tc.args...); code != tc.want {
			t.Errorf("pgbackup %v = %d, want %d\nstdout %s\nstderr %s", tc.args, code, tc.want, stdout, stderr)
		}
	}
	code, stdout, _ = c.cli(nil, "delete", "cli-1", "--json")
	var acc struct {
		TaskID string `json:"task_id"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &acc) != nil || acc.TaskID == "" {
		t.Fatalf("delete --json = %d %s", code, stdout)
	}
	if code, _, stderr := c.cli(nil, "status", acc.TaskID, "--wait"); code != 0 || lastLine(stderr) != "done" {
		t.Fatalf("status --wait = %d %s", code, stderr)
	}
	if code, _, _ := c.cli(nil, "cancel", acc.TaskID); code != 1 {
		t.Errorf("cancel of a finished task = %d, want 1 (409)", code)
	}
}

// TestCLIProgressOnATerminal runs backup --wait on a pseudo-terminal: the
// progress line is redrawn in place and the output ends with done.
func TestCLIProgressOnATerminal(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g`)
	c.startAPI()
	c.start("worker", "worker")
	cmd := exec.Command(filepath.Join(binDir, "pgbackup"), "backup", "--name", "cli-tty", "--wait")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGBACKUP_URL=" + c.apiURL, "PGBACKUP_TOKEN=" + adminToken, "TERM=xterm"}
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, tty); close(copied) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("backup --wait on a terminal did not finish")
	}
	tty.Close()
	<-copied
	text := out.String()
	if err != nil || !strings.Contains(text, "\r\x1b[K") || !strings.HasSuffix(strings.TrimRight(text, "\r\n"), "done") {
		t.Fatalf("exit %v, terminal output %q", err, text)
	}
}
