package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/wal"
)

// walTarget is the pitr target of the archiver tests: its server's WAL
// archive is named after it.
const walTarget = "wal_e2e"

// pitrCluster is a cluster whose target walTarget has pitr on a private
// PITR PostgreSQL, reached as the bench's role (it has REPLICATION) with
// its password from a file, as a user would configure it.
type pitrCluster struct {
	*cluster
	su *pgx.Conn     // superuser, over the socket: writes and pg_switch_wal
	pg testbench.Env // the private PITR server
	// server is the JSON members that point a target at the private
	// server (host, port, user, password_file, sslmode).
	server string
}

// targetJSON adds members to the target's JSON object (`,"sync":true`).
func newPITRCluster(t *testing.T, targetJSON ...string) *pitrCluster {
	t.Helper()
	return newPITRClusterWith(t, testbench.PITROptions{}, targetJSON...)
}

// newPITRClusterWith is newPITRCluster on a server started with po (1 MiB
// WAL segments).
func newPITRClusterWith(t *testing.T, po testbench.PITROptions, targetJSON ...string) *pitrCluster {
	t.Helper()
	env := testbench.Require(t)
	pg := env.StartPITRPostgresWith(t, po)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(pg.PGPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf(`"host":%q,"port":%s,"user":%q,"password_file":%q,"sslmode":"disable"`, pg.PGHost, pg.PGPort, pg.PGUser, pwFile)
	target := fmt.Sprintf(`BACKUP_TARGETS=[{"name":%q,%s,"pitr":true,"pitr_window":"7d"%s}]`,
		walTarget, server, strings.Join(targetJSON, ""))
	c := newClusterOn(t, env, target, "WAL_PARTIAL_INTERVAL=200ms")
	su, err := pgx.Connect(t.Context(), fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable", pg.PGSocket, pg.PGPort))
	if err != nil {
		t.Fatalf("connect as postgres: %v", err)
	}
	t.Cleanup(func() { su.Close(context.Background()) })
	return &pitrCluster{cluster: c, su: su, pg: pg, server: server}
}

// writeAndSwitch inserts rows, switches to a new WAL segment and returns
// where the rows' WAL ends and the name of the segment holding it.
func (p *pitrCluster) writeAndSwitch(t *testing.T, rows int) (wal.LSN, string) {
	t.Helper()
	ctx := t.Context()
	if _, err := p.su.Exec(ctx, "CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.su.Exec(ctx, "INSERT INTO t (v) SELECT md5(i::text) FROM generate_series(1, $1) i", rows); err != nil {
		t.Fatal(err)
	}
	var lsnText, seg string
	if err := p.su.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text, pg_walfile_name(pg_current_wal_insert_lsn())").Scan(&lsnText, &seg); err != nil {
		t.Fatal(err)
	}
	if _, err := p.su.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
		t.Fatal(err)
	}
	lsn, err := wal.ParseLSN(lsnText)
	if err != nil {
		t.Fatal(err)
	}
	return lsn, seg
}

// walVerify runs the real `pgbackup wal verify --target walTarget`.
func (p *pitrCluster) walVerify(t *testing.T) (int, walReport, string) {
	t.Helper()
	cmd := p.progs.Command(harness.CLI, []string{"wal", "verify", "--target", walTarget})
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("pgbackup wal verify: %v", err)
	}
	var r walReport
	if code == 0 || out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("pgbackup wal verify printed %q (stderr %q): %v", out.String(), errb.String(), err)
		}
	}
	return code, r, out.String() + errb.String()
}

// walReport is what `pgbackup wal verify` prints.
type walReport struct {
	OK     bool        `json:"ok"`
	Gaps   []string    `json:"gaps"`
	Chains []wal.Chain `json:"chains"`
}

// waitArchived waits until the segment seg is in MinIO under the target's
// archive and every store's chain reaches lsn.
func (p *pitrCluster) waitArchived(t *testing.T, lsn wal.LSN, seg string) {
	t.Helper()
	m := p.minio()
	prefix := wal.Root(walTarget) + seg[:8] + "/" + seg
	err := harness.Poll(t.Context(), 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		objs, err := m.List(t.Context(), prefix)
		if err != nil || len(objs) == 0 {
			return false, nil
		}
		return p.chainsPast(t, lsn), nil
	})
	if err != nil {
		code, _, out := p.walVerify(t)
		t.Fatalf("segment %s (up to %s) not archived in MinIO under %s: %v; wal verify exit %d: %s", seg, lsn, prefix, err, code, out)
	}
}

// chainsPast reports whether wal verify finds chains, each reaching lsn.
func (p *pitrCluster) chainsPast(t *testing.T, lsn wal.LSN) bool {
	t.Helper()
	_, r, _ := p.walVerify(t)
	for _, c := range r.Chains {
		if c.End.LSN < lsn {
			return false
		}
	}
	return len(r.Chains) > 0
}

// checkNoGap runs wal verify and wants exit 0 with contiguous chains
// reaching lsn.
func (p *pitrCluster) checkNoGap(t *testing.T, lsn wal.LSN) {
	t.Helper()
	code, r, out := p.walVerify(t)
	if code != 0 || !r.OK {
		t.Fatalf("pgbackup wal verify --target %s: exit %d: %s", walTarget, code, out)
	}
	for _, c := range r.Chains {
		if c.Contiguous().LSN < lsn {
			t.Fatalf("store %s: contiguous only to %s, want %s: %s", c.Store, c.Contiguous().LSN, lsn, out)
		}
	}
}

// TestArchiverProgram runs the real archiver binary on a pitr target: the
// WAL reaches MinIO and `pgbackup wal verify` passes; after a kill -9 and
// a restart, the archive goes on from where it ended, without a gap.
func TestArchiverProgram(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	arch := p.start("archiver", harness.Archiver)
	if err := arch.WaitLog(t.Context(), "lease taken", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	lsn, seg := p.writeAndSwitch(t, 1000)
	p.waitArchived(t, lsn, seg)
	p.checkNoGap(t, lsn)

	if err := arch.Kill(); err != nil {
		t.Fatal(err)
	}
	// Written while no archiver runs: the slot keeps it for the next one.
	lsn, seg = p.writeAndSwitch(t, 5000)
	lsn2, seg2 := p.writeAndSwitch(t, 1000)
	if seg2 == seg {
		t.Fatalf("pg_switch_wal did not move to a new segment (%s)", seg)
	}
	arch, err := arch.Restart()
	if err != nil {
		t.Fatal(err)
	}
	p.waitArchived(t, lsn2, seg2)
	p.checkNoGap(t, lsn2)
	if lsn >= lsn2 {
		t.Fatalf("LSNs went backwards: %s then %s", lsn, lsn2)
	}
	stopCleanly(t, arch)
}

// stopCleanly sends SIGTERM and wants the archiver to exit 0 at once,
// saying so.
func stopCleanly(t *testing.T, arch *harness.Proc) {
	t.Helper()
	if err := arch.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := arch.Err(); err != nil {
		t.Fatalf("archiver on SIGTERM: %v", err)
	}
	if err := arch.WaitLog(t.Context(), "archiver stopped", time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// TestArchiverWithoutPITRTarget: with no pitr target the archiver says so
// and waits for a stop signal instead of exiting (a deployment that runs
// it everywhere would otherwise restart it in a loop).
func TestArchiverWithoutPITRTarget(t *testing.T) {
	t.Parallel()
	c := newCluster(t, `BACKUP_TARGETS=[{"name":"plain"}]`)
	arch := c.start("archiver", harness.Archiver)
	if err := arch.WaitLog(t.Context(), "no target has pitr", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if arch.Exited() {
		t.Fatalf("archiver exited: %v", arch.ExitError())
	}
	if err := arch.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := arch.Err(); err != nil {
		t.Fatalf("archiver on SIGTERM: %v", err)
	}
}

// TestArchiverHotStandby runs two archivers on one target: one streams,
// the other waits; killed, the holder is replaced within 15 s, and the
// archive has no gap across the change.
func TestArchiverHotStandby(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	a := p.start("archiver-a", harness.Archiver)
	b := p.start("archiver-b", harness.Archiver)
	var holder, standby *harness.Proc
	err := harness.Poll(t.Context(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		for _, x := range [][2]*harness.Proc{{a, b}, {b, a}} {
			if x[0].WaitLog(t.Context(), "lease taken", time.Millisecond) == nil {
				holder, standby = x[0], x[1]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no archiver took the lease: %v", err)
	}
	lsn, seg := p.writeAndSwitch(t, 1000)
	p.waitArchived(t, lsn, seg)
	if standby.WaitLog(t.Context(), "lease taken", time.Millisecond) == nil {
		t.Fatalf("both archivers took the lease")
	}

	if err := holder.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	lsn, seg = p.writeAndSwitch(t, 2000)
	// The bound counts from the kill, not from the end of the write.
	if err := standby.WaitLog(t.Context(), "lease taken", time.Until(killed.Add(15*time.Second))); err != nil {
		t.Fatalf("the standby did not take over within 15 s of the holder's death: %v", err)
	}
	t.Logf("standby took over %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	p.waitArchived(t, lsn, seg)
	p.checkNoGap(t, lsn)
}
