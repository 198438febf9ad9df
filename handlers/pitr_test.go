package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/wal"
)

// walState is a StateReader holding one WAL state per target.
type walState struct {
	noState
	wal map[string]*coord.WALStatus
}

func (s walState) Status(_ context.Context, target string) (coord.TargetStatus, error) {
	return coord.TargetStatus{WAL: s.wal[target]}, nil
}

func pitrTargets(t *testing.T) *policy.TargetSet {
	t.Helper()
	var ts []policy.Target
	for _, n := range []string{"db", "known", "unknown", "nobase"} {
		ts = append(ts, policy.Target{Name: n, Database: n, Format: engine.FormatCustom, RPO: time.Minute})
	}
	set, err := policy.NewTargetSet(ts)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// baseEntry is a base backup of WAL archive archive finished at, its WAL
// from start to stop on timeline 1.
func baseEntry(name, archive string, at time.Time, start, stop, unverified string) engine.Entry {
	return engine.Entry{Manifest: engine.Manifest{Name: engine.MustParseName(name), Content: engine.ContentBase, Target: archive,
		FinishedAt: at, Base: &engine.BaseInfo{WALArchive: archive, Timeline: 1, StartLSN: start, StopLSN: stop}}, Unverified: unverified}
}

// TestTargetsCarryPITR: a target whose archiver published a WAL state
// answers pitr (archived_through, lag, slot lag, window, base backup) in
// the documented schema; one without none; one whose archived_through is
// not known yet nulls; one without a base backup a null window; a recent
// archived_through meets the RPO without any dump. The window starts when
// the oldest trusted base backup whose WAL the archive holds finished.
func TestTargetsCarryPITR(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	state := walState{wal: map[string]*coord.WALStatus{
		"known": {Archive: "known", Timeline: 1, ArchivedLSN: "0/3000100", ArchivedThrough: now.Add(-2 * time.Second),
			ServerLSN: "0/3000200", SlotLagBytes: 256, LastSegment: "000000010000000000000003", Updated: now, Started: now.Add(-time.Hour),
			OldestLSN: "0/2000000", GapsChecked: now},
		"unknown": {Archive: "known", ArchivedLSN: "0/0", ServerLSN: "0/0", Updated: now},
		"nobase": {Archive: "nobase", Timeline: 1, ArchivedLSN: "0/3000100", ArchivedThrough: now, ServerLSN: "0/3000100",
			Updated: now, Started: now.Add(-time.Hour)},
	}}
	bases := []engine.Entry{
		baseEntry("b_new", "known", now.Add(-10*time.Minute), "0/3000028", "0/3000200", ""), // stop not archived yet
		baseEntry("b_mid", "known", now.Add(-90*time.Minute), "0/2000028", "0/2000100", ""),
		baseEntry("b_old", "known", now.Add(-2*time.Hour), "0/1000028", "0/1000100", ""),       // its WAL is pruned
		baseEntry("b_forged", "known", now.Add(-3*time.Hour), "0/2000028", "0/2000100", "bad"), // not trusted
		baseEntry("b_other", "other", now.Add(-4*time.Hour), "0/2000028", "0/2000100", ""),     // another archive's
	}
	f := newFixtureWith(t, func(d *Deps) {
		d.Targets, d.State = pitrTargets(t), state
		d.Backups.(*fakeBackups).entries = bases
	})
	req := httptest.NewRequest("GET", "/api/admin/targets", nil)
	req.Header.Set("Authorization", "Bearer "+testViewer)
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)

	checkAgainstOpenAPI(t, compiledOpenAPI(t), loadOpenAPI(t), "targets with pitr", "GET", "/api/admin/targets", rec)
	got := targetsByName(t, rec)
	if got["db"].PITR != nil {
		t.Errorf("db: pitr = %+v, want none (no archiver)", got["db"].PITR)
	}
	k := got["known"].PITR
	if k == nil || k.ArchivedThrough == nil || k.LagSeconds == nil || k.Window == nil {
		t.Fatalf("known: pitr = %+v, want archived_through, lag and window", k)
	}
	if !k.ArchivedThrough.Equal(now.Add(-2*time.Second)) || *k.LagSeconds < 2 || *k.LagSeconds > 60 || k.SlotLagBytes != 256 {
		t.Errorf("known: pitr = %+v (lag %v), want archived_through 2 s ago and slot lag 256", k, *k.LagSeconds)
	}
	if !k.Window.From.Equal(now.Add(-90*time.Minute)) || !k.Window.To.Equal(*k.ArchivedThrough) {
		t.Errorf("known: window = %+v, want from b_mid's end (%s) to archived_through", k.Window, now.Add(-90*time.Minute))
	}
	if b := k.BaseBackup; b == nil || b.Name != "b_new" || b.StopLSN != "0/3000200" || b.AgeSeconds < 600 || b.AgeSeconds > 700 {
		t.Errorf("known: base_backup = %+v, want b_new, about 600 s old", b)
	}
	if nb := got["nobase"].PITR; nb == nil || nb.ArchivedThrough == nil || nb.Window != nil || nb.BaseBackup != nil {
		t.Errorf("nobase: pitr = %+v, want archived_through and a null window and base backup (no base backup)", nb)
	}
	if m := got["known"].RPOMet; m == nil || !*m {
		t.Errorf("known: rpo_met = %v, want true (archived 2 s ago, RPO 1 m)", m)
	}
	u := got["unknown"].PITR
	if u == nil || u.ArchivedThrough != nil || u.Window != nil || u.LagSeconds != nil {
		t.Errorf("unknown: pitr = %+v, want nulls until archived_through is known", u)
	}
	if m := got["unknown"].RPOMet; m == nil || *m {
		t.Errorf("unknown: rpo_met = %v, want false", m)
	}
}

// TestMetricsShowWAL: /metrics has the WAL gauges of a pitr target.
func TestMetricsShowWAL(t *testing.T) {
	t.Parallel()
	through := time.UnixMilli(1_700_000_000_500)
	state := walState{wal: map[string]*coord.WALStatus{"known": {Archive: "known", ArchivedThrough: through, SlotLagBytes: 4096,
		Updated: through, Gaps: 2, GapsChecked: through}}}
	bases := &fakeBackups{entries: []engine.Entry{
		baseEntry("b_new", "known", time.Now().Add(-time.Hour), "0/3000028", "0/3000200", ""),
		baseEntry("b_old", "known", time.Now().Add(-5*time.Hour), "0/2000028", "0/2000200", ""),
	}}
	l := logrus.New()
	l.SetOutput(io.Discard)
	rec := httptest.NewRecorder()
	NewMetrics(pitrTargets(t), state, nil, "test", ManifestTrust{Backups: bases}, logrus.NewEntry(l)).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if m := regexp.MustCompile(`pgbackup_base_backup_age_seconds\{target="known"\} (\S+)`).FindStringSubmatch(body); m == nil {
		t.Errorf("/metrics lacks pgbackup_base_backup_age_seconds for known:\n%s", body)
	} else if age, err := strconv.ParseFloat(m[1], 64); err != nil || age < 3600 || age > 3700 {
		t.Errorf("pgbackup_base_backup_age_seconds = %s, want the newest base backup's age, about 3600", m[1])
	}
	for _, w := range []string{
		`pgbackup_wal_gaps{target="known"} 2`,
		`pgbackup_wal_archived_through_timestamp_seconds{target="known"} 1.7000000005e+09`,
		`pgbackup_wal_slot_lag_bytes{target="known"} 4096`,
		`pgbackup_wal_lag_seconds{target="known"} `,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %q:\n%s", w, body)
		}
	}
	if strings.Contains(body, `pgbackup_wal_slot_lag_bytes{target="db"}`) {
		t.Errorf("/metrics has WAL gauges for a target without WAL state:\n%s", body)
	}
}

// fakeWALPruner records the cuts it was asked about.
type fakeWALPruner struct{ calls []wal.Position }

func (f *fakeWALPruner) Prune(_ context.Context, before wal.Position, dryRun bool) (wal.PruneReport, error) {
	f.calls = append(f.calls, before)
	return wal.PruneReport{Timeline: before.Timeline, BeforeLSN: before.LSN.String(), Objects: 3, Segments: 2, Chunks: 1,
		Bytes: 100, DryRun: dryRun}, nil
}

// TestPrunePreviewOfAPITRTarget: the dry run of a pitr target lists the
// base backups its archive's pitr_window would delete, and the WAL
// summary at the cut (the start of the oldest base backup kept), in the
// documented schema, deleting nothing.
func TestPrunePreviewOfAPITRTarget(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	pruner := &fakeWALPruner{}
	f := newFixtureWith(t, func(d *Deps) {
		d.Targets = pitrTargets(t)
		d.Backups.(*fakeBackups).entries = []engine.Entry{
			baseEntry("b_in", "known", now.Add(-time.Hour), "0/5000028", "0/5000100", ""),
			baseEntry("b_before", "known", now.Add(-25*time.Hour), "0/3000028", "0/3000100", ""),
			baseEntry("b_old", "known", now.Add(-49*time.Hour), "0/1000028", "0/1000100", ""),
		}
		d.PITR = map[string]policy.PITRArchive{"known": {Name: "known", Window: 24 * time.Hour, WAL: pruner}}
	})
	req := httptest.NewRequest("GET", "/api/admin/targets/known/prune", nil)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("dry run: %d %s", rec.Code, rec.Body)
	}
	c := compiledOpenAPI(t)
	checkAgainstOpenAPI(t, c, loadOpenAPI(t), "pitr prune dry run", "GET", "/api/admin/targets/{name}/prune", rec)
	var out struct {
		WouldDelete []string        `json:"would_delete"`
		PITR        pitrPreviewJSON `json:"pitr"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if strings.Join(out.WouldDelete, ",") != "b_old" || len(out.PITR.BaseBackups) != 3 {
		t.Errorf("would_delete %v, base backups %+v: want b_old only", out.WouldDelete, out.PITR.BaseBackups)
	}
	want := wal.Position{Timeline: 1, LSN: 0x3000028}
	if len(pruner.calls) != 1 || pruner.calls[0] != want || out.PITR.WAL == nil || !out.PITR.WAL.DryRun ||
		out.PITR.WAL.BeforeLSN != "0/3000028" || out.PITR.WAL.Objects != 3 {
		t.Errorf("WAL asked %v, answered %+v: want one dry run cut at b_before's start 0/3000028", pruner.calls, out.PITR.WAL)
	}
}

// targetsByName is GET /api/admin/targets's answer by target name.
func targetsByName(t *testing.T, rec *httptest.ResponseRecorder) map[string]targetJSON {
	t.Helper()
	var out struct {
		Targets []targetJSON `json:"targets"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	got := map[string]targetJSON{}
	for _, tj := range out.Targets {
		got[tj.Name] = tj
	}
	return got
}
