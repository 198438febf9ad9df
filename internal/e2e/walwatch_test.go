package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/wal"
)

// TestWALGapAlert runs the real archiver and scheduler on a pitr target:
// a whole archive raises nothing; a segment deleted from MinIO under the
// running scheduler reaches the signed webhook as one wal.gap naming that
// segment's range, within 60 s (WAL_CHECK_INTERVAL shrunk to 500 ms).
func TestWALGapAlert(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	const secret = "webhook-secret-for-the-wal-gap-test"
	hook := &receiver{t: t, secret: secret}
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)

	arch := p.start("archiver", harness.Archiver)
	if err := arch.WaitLog(t.Context(), "lease taken", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var lsn wal.LSN
	var seg string
	for range 3 {
		lsn, seg = p.writeAndSwitch(t, 500)
	}
	p.waitArchived(t, lsn, seg)
	sched := p.start("scheduler", harness.Scheduler, "ALERT_WEBHOOK_URLS="+hs.URL, "ALERT_WEBHOOK_SECRET="+secret,
		"WAL_CHECK_INTERVAL=500ms")
	if err := sched.WaitLog(t.Context(), "scheduler started", 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// A whole segment with WAL archived before and after it.
	objs, err := p.minio().List(t.Context(), wal.Root(walTarget))
	if err != nil {
		t.Fatal(err)
	}
	var segKeys []string
	for _, o := range objs {
		if !strings.Contains(o.Key, "/partial/") && !strings.Contains(o.Key, ".history") {
			segKeys = append(segKeys, o.Key)
		}
	}
	slices.Sort(segKeys)
	if len(segKeys) < 3 {
		t.Fatalf("%d whole segments archived, want 3 or more: %v", len(segKeys), segKeys)
	}
	victim := segKeys[len(segKeys)/2]
	name := strings.SplitN(victim[strings.LastIndex(victim, "/")+1:], ".", 2)[0]
	_, segno, err := wal.ParseSegmentName(name, wal.DefaultSegmentSize)
	if err != nil {
		t.Fatalf("segment key %s: %v", victim, err)
	}
	wantRange := wal.LSN(segno*wal.DefaultSegmentSize).String() + "-" + wal.LSN((segno+1)*wal.DefaultSegmentSize).String()
	if n := hook.count(alert.EventWALGap, walTarget); n != 0 {
		t.Fatalf("%d wal.gap alerts before any damage: %+v", n, hook.find(alert.EventWALGap, walTarget))
	}
	if err := p.minio().Delete(t.Context(), victim); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	waitFor(t, 60*time.Second, "wal.gap at the webhook", func() bool { return hook.count(alert.EventWALGap, walTarget) > 0 })
	e := hook.find(alert.EventWALGap, walTarget)
	if !strings.Contains(e.Error, wantRange) {
		t.Errorf("wal.gap %+v, want the deleted segment's range %s", e, wantRange)
	}
	t.Logf("wal.gap delivered %s after the delete: %s", time.Since(deleted).Round(100*time.Millisecond), e.Text)
	if err := sched.WaitLog(t.Context(), "the WAL archive has a gap", 10*time.Second); err != nil {
		t.Errorf("the scheduler did not log the gap: %v", err)
	}
}

// Shrunk intervals of the watcher tests: the scheduler scans every
// watchInterval and calls an archive stalled after watchStallAfter.
const (
	watchInterval   = "500ms"
	watchStallAfter = 3 * time.Second
)

// startArchiving starts the archiver and waits until it has archived a
// first write.
func (p *pitrCluster) startArchiving(t *testing.T) *harness.Proc {
	t.Helper()
	arch := p.start("archiver", harness.Archiver)
	if err := arch.WaitLog(t.Context(), "lease taken", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	lsn, seg := p.writeAndSwitch(t, 200)
	p.waitArchived(t, lsn, seg)
	return arch
}

// startWatcher starts a scheduler watching the archive with the shrunk
// intervals, alerting a signed webhook receiver of its own. It reads no
// password_file (see docs/security.md): it logs into the server through
// a .pgpass file, the way docs/operations.md tells a user to.
func (p *pitrCluster) startWatcher(t *testing.T, extra ...string) (*receiver, *harness.Proc) {
	t.Helper()
	hook := &receiver{t: t, secret: "webhook-secret-for-the-wal-watch-tests"}
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	url := hs.URL
	pass := filepath.Join(t.TempDir(), "pgpass")
	line := fmt.Sprintf("%s:%s:*:%s:%s\n", p.pg.PGHost, p.pg.PGPort, p.pg.PGUser, p.pg.PGPassword)
	if err := os.WriteFile(pass, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append([]string{"ALERT_WEBHOOK_URLS=" + url, "ALERT_WEBHOOK_SECRET=" + hook.secret, "PGPASSFILE=" + pass,
		"WAL_CHECK_INTERVAL=" + watchInterval, "WAL_STALL_AFTER=" + watchStallAfter.String()}, extra...)
	sched := p.start("scheduler", harness.Scheduler, env...)
	if err := sched.WaitLog(t.Context(), "scheduler started", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return hook, sched
}

// TestWALStallAlert: with a writer committing every 100 ms, a SIGKILLed
// archiver raises one signed wal.stalled within WAL_STALL_AFTER plus a
// few checks (bound 60 s); restarted, it archives again from where the
// archive ended, without a gap, and the scheduler logs that the end
// moves again, without a second alert.
func TestWALStallAlert(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	arch := p.startArchiving(t)
	hook, sched := p.startWatcher(t)
	wctx, stopWriter := context.WithCancel(t.Context())
	w := startMarkerWriter(wctx, t, p.connect(t), "stall")
	t.Cleanup(func() { stopWriter(); <-w.done }) // before its connection closes
	w.waitMarkers(t, 10)

	if err := arch.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, 60*time.Second, "wal.stalled at the webhook", func() bool { return hook.count(alert.EventWALStalled, walTarget) > 0 })
	t.Logf("wal.stalled delivered %s after the kill (WAL_STALL_AFTER %s): %s", time.Since(killed).Round(100*time.Millisecond),
		watchStallAfter, hook.find(alert.EventWALStalled, walTarget).Text)
	if n := w.count(); n < 20 {
		t.Fatalf("the writer committed %d markers in all, want it writing through the stall", n)
	}

	arch, err := arch.Restart()
	if err != nil {
		t.Fatal(err)
	}
	if err := arch.WaitLog(t.Context(), "lease taken", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	lsn, seg := p.writeAndSwitch(t, 200)
	p.waitArchived(t, lsn, seg)
	if err := sched.WaitLog(t.Context(), "the WAL archive's end moves again", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	p.checkNoGap(t, lsn)
	if n := hook.count(alert.EventWALStalled, walTarget); n != 1 {
		t.Errorf("%d wal.stalled alerts for one stall, want 1", n)
	}
	if n := hook.count(alert.EventWALGap, walTarget); n != 0 {
		t.Errorf("%d wal.gap alerts: %+v", n, hook.find(alert.EventWALGap, walTarget))
	}
}

// walSender is the archiver's walsender on the server: its pid and when
// its connection started, once there is exactly one.
func (p *pitrCluster) walSender(t *testing.T) (int, time.Time) {
	t.Helper()
	var pid, n int
	var started time.Time
	err := harness.Poll(t.Context(), 15*time.Second, 100*time.Millisecond, func() (bool, error) {
		err := p.su.QueryRow(t.Context(), "SELECT count(*) OVER (), pid, backend_start FROM pg_stat_replication").Scan(&n, &pid, &started)
		return err == nil && n == 1, nil
	})
	if err != nil {
		t.Fatalf("pg_stat_replication: %d walsenders, want the archiver's one: %v", n, err)
	}
	return pid, started
}

// TestWALIdleThenBurst: the server writes nothing for three times
// WAL_STALL_AFTER, then a burst of several segments: no alert at any
// point (the receiver keeps every delivery), and the archiver kept its
// one replication connection throughout (no reconnect on idle, no
// reconnect storm after).
func TestWALIdleThenBurst(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	arch := p.startArchiving(t)
	hook, sched := p.startWatcher(t)
	pid, started := p.walSender(t)

	// The idle period is the scenario, not a wait for a condition: the
	// watcher checks every 500 ms through it.
	time.Sleep(3 * watchStallAfter)
	var lsn wal.LSN
	var seg string
	for range 3 {
		lsn, seg = p.writeAndSwitch(t, 100000)
	}
	p.waitArchived(t, lsn, seg)
	// Room for a late false alert (a stall is called after
	// WAL_STALL_AFTER, delivered within a second).
	time.Sleep(watchStallAfter + time.Second)

	hook.mu.Lock()
	events := slices.Clone(hook.events)
	hook.mu.Unlock()
	if len(events) != 0 {
		t.Errorf("alerts over an idle period and a burst, want none: %+v", events)
	}
	if pid2, started2 := p.walSender(t); pid2 != pid || !started2.Equal(started) {
		t.Errorf("the archiver's walsender changed from pid %d (started %s) to %d (started %s): it reconnected", pid, started, pid2, started2)
	}
	log := logText(t, arch)
	if n := strings.Count(log, "archiver: streaming WAL"); n != 1 || strings.Contains(log, "streaming failed") {
		t.Errorf("the archiver started streaming %d times (want once) or failed:\n%s", n, tail(log, 3000))
	}
	if sched.Exited() {
		t.Fatalf("scheduler exited: %v", sched.ExitError())
	}
}
