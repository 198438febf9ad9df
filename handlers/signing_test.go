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
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
)

// TestListSignedMeansVerified: "signed" in the listing is the engine's
// verdict, not the presence of a signature field that anyone who can
// write the bucket can add.
func TestListSignedMeansVerified(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	f.backups.entries = []engine.Entry{
		{Manifest: engine.Manifest{Name: engine.MustParseName("verified"), Format: engine.FormatCustom, FinishedAt: at, Signature: "aa"},
			Locations: []string{store.LocalName}, Verified: true},
		{Manifest: engine.Manifest{Name: engine.MustParseName("forged"), Format: engine.FormatCustom, FinishedAt: at, Signature: "bb"},
			Locations: []string{store.LocalName}, Unverified: "in local: bad signature"},
	}
	code, body := f.do("GET", "/api/admin/backup/list", testViewer, nil)
	if code != 200 {
		t.Fatalf("list: %d %s", code, body)
	}
	var out struct {
		Backups []struct {
			Name   string `json:"backup_name"`
			Signed bool   `json:"signed"`
		} `json:"backups"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, b := range out.Backups {
		got[b.Name] = b.Signed
	}
	if !got["verified"] || got["forged"] {
		t.Errorf("signed: %v, want verified true and forged false", got)
	}
}

// noState is a StateReader with nothing recorded.
type noState struct{}

func (noState) Status(context.Context, string) (coord.TargetStatus, error) {
	return coord.TargetStatus{}, nil
}
func (noState) Counters(context.Context) (map[[2]string]int64, error) { return nil, nil }
func (noState) Drills(context.Context, string, int) ([]tasks.DrillResult, error) {
	return nil, nil
}

// TestMetricsShowSigningAndUnverifiedManifests: /metrics says whether
// manifests are signed, and counts the manifests that do not verify.
func TestMetricsShowSigningAndUnverifiedManifests(t *testing.T) {
	t.Parallel()
	targets, err := policy.NewTargetSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	backups := &fakeBackups{entries: []engine.Entry{
		{Manifest: engine.Manifest{Name: engine.MustParseName("a")}, Verified: true},
		{Manifest: engine.Manifest{Name: engine.MustParseName("b")}, Unverified: "bad"},
		{Manifest: engine.Manifest{Name: engine.MustParseName("c")}, Unverified: "bad"},
	}}
	scrape := func(trust ManifestTrust) string {
		rec := httptest.NewRecorder()
		NewMetrics(targets, noState{}, nil, "test", trust, logrus.NewEntry(l)).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	for _, tt := range []struct {
		name  string
		trust ManifestTrust
		want  []string
	}{
		{"signed", ManifestTrust{Signing: true, Backups: backups},
			[]string{"pgbackup_manifest_signing_enabled 1", "pgbackup_manifests_unverified 2"}},
		{"unsigned", ManifestTrust{}, []string{"pgbackup_manifest_signing_enabled 0"}},
	} {
		body := scrape(tt.trust)
		for _, w := range tt.want {
			if !strings.Contains(body, w+"\n") {
				t.Errorf("%s: /metrics lacks %q:\n%s", tt.name, w, body)
			}
		}
	}
}

// TestRefuseUnsignedRestores: with REFUSE_UNSIGNED_RESTORES on, restore and
// verify that ask for allow_unsigned get 403 naming the setting and queue
// nothing; off, the same requests are accepted.
func TestRefuseUnsignedRestores(t *testing.T) {
	t.Parallel()
	requests := []struct{ path, body string }{
		{"/api/admin/backup/restore", `{"backup_name":"existing","target_database":"copy","allow_unsigned":true}`},
		{"/api/admin/backup/existing/verify", `{"allow_unsigned":true}`},
	}
	refusing := newFixtureWith(t, func(d *Deps) { d.RefuseUnsigned = true })
	allowing := newFixture(t)
	for _, r := range requests {
		code, body := refusing.do("POST", r.path, testAdmin, strings.NewReader(r.body))
		if code != 403 || !strings.Contains(body, "REFUSE_UNSIGNED_RESTORES") {
			t.Errorf("refusing %s: %d %s, want 403 naming REFUSE_UNSIGNED_RESTORES", r.path, code, body)
		}
		if code, body := allowing.do("POST", r.path, testAdmin, strings.NewReader(r.body)); code != 202 {
			t.Errorf("allowing %s: %d %s, want 202", r.path, code, body)
		}
	}
	if n := refusing.queue.count(); n != 0 {
		t.Errorf("%d tasks queued by refused requests", n)
	}
	// Without allow_unsigned the setting changes nothing.
	if code, body := refusing.do("POST", requests[1].path, testAdmin, strings.NewReader(`{}`)); code != 202 {
		t.Errorf("verify without allow_unsigned: %d %s, want 202", code, body)
	}
}

// TestTargetsNewestBackupIsAVerifiedOne: a newer backup whose manifest does
// not verify is not a target's newest good backup.
func TestTargetsNewestBackupIsAVerifiedOne(t *testing.T) {
	t.Parallel()
	targets, err := policy.NewTargetSet([]policy.Target{{Name: "app", Database: "app", Format: engine.FormatCustom}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(d *Deps) { d.Targets = targets })
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	f.backups.entries = []engine.Entry{
		{Manifest: engine.Manifest{Name: engine.MustParseName("forged"), Target: "app", FinishedAt: at.Add(time.Hour)}, Unverified: "bad"},
		{Manifest: engine.Manifest{Name: engine.MustParseName("good"), Target: "app", FinishedAt: at}, Verified: true},
	}
	code, body := f.do("GET", "/api/admin/targets", testViewer, nil)
	if code != 200 {
		t.Fatalf("targets: %d %s", code, body)
	}
	var out struct {
		Targets []struct {
			Newest *struct {
				Name string `json:"backup_name"`
			} `json:"newest_backup"`
		} `json:"targets"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Targets) != 1 || out.Targets[0].Newest == nil || out.Targets[0].Newest.Name != "good" {
		t.Errorf("targets %s, want app's newest backup to be good", body)
	}
}
