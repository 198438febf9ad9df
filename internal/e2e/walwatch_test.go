package e2e

import (
	"net/http/httptest"
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
