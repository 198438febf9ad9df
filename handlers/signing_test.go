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
