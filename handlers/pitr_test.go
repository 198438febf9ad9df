package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
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
	for _, n := range []string{"db", "known", "unknown"} {
		ts = append(ts, policy.Target{Name: n, Database: n, Format: engine.FormatCustom, RPO: time.Minute})
	}
	set, err := policy.NewTargetSet(ts)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestTargetsCarryPITR: a target whose archiver published a WAL state
// answers pitr (archived_through, lag, slot lag, window) in the documented
// schema; one without none; one whose archived_through is not known yet
// nulls; a recent archived_through meets the RPO without any dump.
func TestTargetsCarryPITR(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	state := walState{wal: map[string]*coord.WALStatus{
		"known": {Archive: "known", Timeline: 1, ArchivedLSN: "0/3000100", ArchivedThrough: now.Add(-2 * time.Second),
			ServerLSN: "0/3000200", SlotLagBytes: 256, LastSegment: "000000010000000000000003", Updated: now, Started: now.Add(-time.Hour)},
		"unknown": {Archive: "known", ArchivedLSN: "0/0", ServerLSN: "0/0", Updated: now},
	}}
	f := newFixtureWith(t, func(d *Deps) { d.Targets, d.State = pitrTargets(t), state })
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
	if !k.Window.From.Equal(now.Add(-time.Hour)) || !k.Window.To.Equal(*k.ArchivedThrough) {
		t.Errorf("known: window = %+v, want from the archive's start to archived_through", k.Window)
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
	state := walState{wal: map[string]*coord.WALStatus{"known": {ArchivedThrough: through, SlotLagBytes: 4096, Updated: through}}}
	l := logrus.New()
	l.SetOutput(io.Discard)
	rec := httptest.NewRecorder()
	NewMetrics(pitrTargets(t), state, nil, "test", ManifestTrust{}, logrus.NewEntry(l)).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, w := range []string{
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
