package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/jobs/wal"
)

// TestArchiverPublishesPITRState runs the real archiver and API on a pitr
// target: GET /api/admin/targets carries the target's pitr state in the
// documented schema, archived_through is recent while the server is idle,
// and it and the archived position advance past a write and a segment
// switch; the window is null until a base backup whose WAL the archive
// holds exists, then starts when it finished; /metrics has the WAL gauges
// and the base backup's age, and the page shows the lag and that age.
func TestArchiverPublishesPITRState(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	p.startAPI()
	code, _, doc := p.raw(http.MethodGet, "/api/openapi.json", "", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("openapi.json: %d", code)
	}
	ck := newOpenAPIChecker(t, doc)
	arch := p.start("archiver", harness.Archiver)
	if err := arch.WaitLog(t.Context(), "lease taken", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	viewer := p.viewer()
	// pitr polls the targets until ok holds of walTarget's pitr state.
	pitr := func(what string, ok func(*client.PITRStatus) bool) *client.PITRStatus {
		t.Helper()
		var last *client.PITRStatus
		err := harness.Poll(t.Context(), 15*time.Second, 200*time.Millisecond, func() (bool, error) {
			var r client.Response
			tl, err := viewer.Targets(t.Context(), client.WithResponse(&r))
			if err != nil {
				return false, err
			}
			ck.check("GET /api/admin/targets", &r)
			for _, tg := range tl.Targets {
				if tg.Name == walTarget {
					last = tg.PITR
				}
			}
			return last != nil && ok(last), nil
		})
		if err != nil {
			t.Fatalf("%s: %v; last pitr %+v\narchiver log:\n%s", what, err, last, tail(logText(t, arch), 3000))
		}
		return last
	}
	recent := pitr("archived_through within 10 s of now (idle server)", func(s *client.PITRStatus) bool {
		return s.ArchivedThrough != nil && time.Since(*s.ArchivedThrough) < 10*time.Second
	})
	if recent.SlotLagBytes < 0 || recent.LagSeconds == nil || recent.Window != nil || recent.BaseBackup != nil || recent.Archive != walTarget {
		t.Fatalf("pitr %+v: want slot_lag_bytes >= 0, lag_seconds, no window and no base backup (none taken), archive %s", recent, walTarget)
	}

	lsn, seg := p.writeAndSwitch(t, 2000)
	wrote := time.Now()
	moved := pitr("archived_through past the write, archived_lsn past "+lsn.String(), func(s *client.PITRStatus) bool {
		archived, err := wal.ParseLSN(s.ArchivedLSN)
		return err == nil && archived > lsn && s.ArchivedThrough != nil && s.ArchivedThrough.After(wrote)
	})
	if moved.LastSegment < seg {
		t.Errorf("last_segment %s, want %s or later", moved.LastSegment, seg)
	}

	// A base backup whose WAL the archive holds (published as the engine
	// lists one) opens the window at its end.
	archived, err := wal.ParseLSN(moved.ArchivedLSN)
	if err != nil {
		t.Fatal(err)
	}
	finished := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	base := putBaseBackup(t, p.minio(), walTarget, finished, lsn-0x100, min(lsn, archived))
	withBase := pitr("the window from the base backup's end", func(s *client.PITRStatus) bool {
		return s.Window != nil && s.BaseBackup != nil
	})
	if !withBase.Window.From.Equal(finished) || withBase.Window.From.After(withBase.Window.To) || withBase.BaseBackup.Name != base ||
		withBase.BaseBackup.AgeSeconds < 60 {
		t.Fatalf("pitr %+v, base backup %+v: want window from %s (when %s finished) and its age", withBase, withBase.BaseBackup, finished, base)
	}

	metrics, err := viewer.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"pgbackup_wal_archived_through_timestamp_seconds", "pgbackup_wal_lag_seconds", "pgbackup_wal_slot_lag_bytes",
		"pgbackup_base_backup_age_seconds"} {
		if !strings.Contains(string(metrics), m+`{target="`+walTarget+`"} `) {
			t.Errorf("/metrics lacks %s for %s", m, walTarget)
		}
	}

	// The page's targets table shows the archive's lag and slot lag.
	ctx := newBrowser(t)
	do(t, ctx, "open the page as a viewer", 30*time.Second, chromedp.Navigate(p.apiURL+"/ui/#token="+viewerToken))
	cell := fmt.Sprintf(`document.querySelector('#targets tr[data-name=%q] td[data-label="WAL archive"]')`, walTarget)
	waitJS(t, ctx, "the WAL archive cell", cell+` !== null && / behind, slot \d.*, base backup \d+m old/.test(`+cell+`.textContent)`, 20*time.Second)
}
