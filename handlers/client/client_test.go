package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// examples are answers as the service gives them, one per operation
// (checked against the document before they are sent).
var examples = map[string]string{
	"GET /healthz":                  `{"status":"ok"}`,
	"GET /readyz":                   `{"status":"ready"}`,
	"GET /api/whoami":               `{"role":"admin"}`,
	"POST /api/admin/backup/create": `{"task_id":"t-1","backup_name":"nightly","status_url":"/api/admin/tasks/t-1"}`,
	"GET /api/admin/backup/list": `{"backups":[{"backup_name":"nightly","format":"custom","database":"app","size_bytes":2048,"size_mb":0,
		"sha256":"ab12","created_at":"2025-01-02T03:04:05Z","locations":["primary"],"archive_key":"postgres/nightly.dump","codec":"",
		"target":"app","scheduled":true,"signed":true,"kind":"server","databases":["app","crm"]}],"count":1,"total":3,"next_cursor":"c2"}`,
	"GET /api/admin/tasks/{id}": `{"task_id":"t-1","type":"backup:create","queue":"default","state":"active",
		"progress":{"phase":"dump","bytes":4096,"updated_at":"2025-01-02T03:04:05Z"},"result":null,"error":"","retried":0,"max_retry":3,
		"worker":"w1","payload":{"backup_name":"nightly"},"request_id":"r-1","started_at":"2025-01-02T03:04:00.5Z"}`,
	"GET /api/admin/targets": `{"targets":[{"name":"app","database":"app","format":"custom","stores":["primary"],"schedule":"@daily",
		"next_run":"2025-01-03T00:00:00Z","retention":{"keep_last":3,"keep_daily":7,"keep_weekly":0,"keep_monthly":0},"rpo_seconds":90000,
		"newest_backup":{"backup_name":"nightly","created_at":"2025-01-02T03:04:05Z","size_bytes":2048},"age_seconds":12.5,"rpo_met":true,
		"last_drill":{"target":"app","backup_name":"nightly","at":"2025-01-02T04:00:00Z","passed":true,"rto_seconds":3.5,"backup_age_seconds":60,"tables_checked":4}}],"count":1}`,
	"GET /api/admin/targets/{name}/prune": `{"target":"app","dry_run":true,"retention":{"keep_last":1,"keep_daily":0,"keep_weekly":0,"keep_monthly":0},
		"would_delete":["old"],"decisions":[{"backup_name":"nightly","created_at":"2025-01-02T03:04:05Z","keep":true,"reasons":["newest"]},
		{"backup_name":"old","created_at":"2025-01-01T03:04:05Z","keep":false,"reasons":null}]}`,
	"GET /api/admin/drills": `{"drills":[{"target":"app","backup_name":"nightly","task_id":"t-9","at":"2025-01-02T04:00:00Z","passed":false,
		"rto_seconds":1,"backup_age_seconds":2,"tables_checked":0,"error":"restore failed"}],"count":1}`,
	"GET /api/admin/audit": `{"entries":[{"at":"2025-01-02T04:00:00Z","token_fingerprint":"ab","action":"POST /api/admin/backup/create",
		"backup":"nightly","task_id":"t-1","client":"127.0.0.1","status":202,"outcome":"accepted"}],"count":1}`,
	"POST /api/admin/tasks/{id}/cancel": `{"task_id":"t-1","state":"archived","status_url":"/api/admin/tasks/t-1"}`,
	"GET /metrics":                      "# HELP pgbackup_build_info Build information.\n# TYPE pgbackup_build_info gauge\npgbackup_build_info{version=\"dev\"} 1\n",
}

// textAnswers are the operations whose answer is text/plain, not JSON.
var textAnswers = map[string]bool{"GET /metrics": true}

// accepted is every enqueueing route's answer.
const accepted = `{"task_id":"t-2","status_url":"/api/admin/tasks/t-2"}`

// fakeAPI answers like the service, checking each request against the
// document: its route, its query parameters and headers, and its body.
type fakeAPI struct {
	t        *testing.T
	d        *document
	mu       sync.Mutex
	compiled func(pointer string, body []byte) error
	seen     []string // "METHOD template" of each request
	// headers are the last request's.
	headers http.Header
}

func newFakeAPI(t *testing.T) (*fakeAPI, *Client) {
	d := loadDocument(t)
	c := compiler(t, d)
	f := &fakeAPI{t: t, d: d, compiled: func(p string, b []byte) error { return validate(c, p, b) }}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cl, err := New(srv.URL, "secret-token")
	if err != nil {
		t.Fatal(err)
	}
	return f, cl
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, tmpl, ok := f.d.operation(r.Method, r.URL.EscapedPath())
	if !ok {
		f.t.Errorf("%s %s is not in openapi.json", r.Method, r.URL.Path)
		http.Error(w, `{"error":"no such route"}`, http.StatusNotFound)
		return
	}
	key := r.Method + " " + tmpl
	f.mu.Lock()
	f.seen = append(f.seen, key)
	f.headers = r.Header.Clone()
	f.mu.Unlock()
	for name := range r.URL.Query() {
		if !documentedParam(op, "query", name) {
			f.t.Errorf("%s: query parameter %s is not documented", key, name)
		}
	}
	for _, h := range []string{"Idempotency-Key"} {
		if r.Header.Get(h) != "" && !documentedParam(op, "header", h) {
			f.t.Errorf("%s: header %s is not documented", key, h)
		}
	}
	if r.Header.Get("Authorization") != "Bearer secret-token" {
		f.t.Errorf("%s: Authorization %q", key, r.Header.Get("Authorization"))
	}
	body, _ := io.ReadAll(r.Body)
	f.checkBody(key, tmpl, op, r, body)
	answer, status := examples[key], http.StatusOK
	if r.Method != http.MethodGet {
		status = http.StatusAccepted
	}
	if answer == "" {
		answer = accepted
	}
	contentType, asJSON := "application/json", []byte(answer)
	if textAnswers[key] {
		// The schema describes the text as a JSON string.
		contentType = "text/plain"
		asJSON, _ = json.Marshal(answer)
	}
	ptr := "/paths/" + pointerEscape(tmpl) + "/" + strings.ToLower(r.Method) + "/responses/" + strconv.Itoa(status) +
		"/content/" + pointerEscape(contentType) + "/schema"
	if err := f.compiled(ptr, asJSON); err != nil {
		f.t.Errorf("%s: the test's example answer does not match openapi.json: %v", key, err)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

// checkBody validates a JSON body against the operation's request schema;
// an operation without one must get no body.
func (f *fakeAPI) checkBody(key, tmpl string, op *operation, r *http.Request, body []byte) {
	if op.RequestBody == nil {
		if len(body) > 0 {
			f.t.Errorf("%s: sent a body the operation does not take: %s", key, body)
		}
		return
	}
	if len(body) == 0 {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("%s: Content-Type %q", key, ct)
	}
	ptr := "/paths/" + pointerEscape(tmpl) + "/" + strings.ToLower(r.Method) + "/requestBody/content/application~1json/schema"
	if err := f.compiled(ptr, body); err != nil {
		f.t.Errorf("%s: body does not match openapi.json: %v\n%s", key, err, body)
	}
}

// every sends each of the client's calls with every field set, so each
// request field meets the document; done checks what came back.
var every = []struct {
	method string // the Client method the case covers
	call   func(ctx context.Context, c *Client) (any, error)
}{
	{"Healthz", func(ctx context.Context, c *Client) (any, error) { return c.Healthz(ctx) }},
	{"Readyz", func(ctx context.Context, c *Client) (any, error) { return c.Readyz(ctx) }},
	{"Metrics", func(ctx context.Context, c *Client) (any, error) {
		text, err := c.Metrics(ctx)
		if err == nil && !strings.Contains(string(text), "pgbackup_build_info") {
			err = fmt.Errorf("metrics answered %q", text)
		}
		return &text, err
	}},
	{"WhoAmI", func(ctx context.Context, c *Client) (any, error) { return c.WhoAmI(ctx) }},
	{"CreateBackup", func(ctx context.Context, c *Client) (any, error) {
		return c.CreateBackup(ctx, CreateBackupRequest{BackupName: "nightly", Format: "custom", Database: "app",
			Stores: []string{"primary"}, Target: "app", IncludeGlobals: new(true)}, WithIdempotencyKey("k-1"), WithRequestID("r-1"))
	}},
	{"RestoreBackup", func(ctx context.Context, c *Client) (any, error) {
		return c.RestoreBackup(ctx, RestoreBackupRequest{BackupName: "nightly", From: "primary", TargetDatabase: "copy", Clean: true,
			Replace: true, AllowUnsigned: true, RestoreGlobals: true, Databases: []string{"app"}, Target: "app"}, WithIdempotencyKey("k-2"))
	}},
	{"DeleteBackup", func(ctx context.Context, c *Client) (any, error) {
		return c.DeleteBackup(ctx, "night/ly", DeleteBackupRequest{Stores: []string{"primary"}}, WithIdempotencyKey("k-3"))
	}},
	{"VerifyBackup", func(ctx context.Context, c *Client) (any, error) {
		return c.VerifyBackup(ctx, "nightly", VerifyBackupRequest{From: "primary", AllowUnsigned: true}, WithIdempotencyKey("k-4"))
	}},
	{"AdoptBackups", func(ctx context.Context, c *Client) (any, error) {
		return c.AdoptBackups(ctx, AdoptRequest{DryRun: true, Plan: strings.Repeat("ab", 32)}, WithIdempotencyKey("k-5"))
	}},
	{"BackupBucket", func(ctx context.Context, c *Client) (any, error) {
		return c.BackupBucket(ctx, BucketBackupRequest{Bucket: "photos", BackupName: "b1", Prefix: "2025/", Stores: []string{"primary"}})
	}},
	{"RestoreBucket", func(ctx context.Context, c *Client) (any, error) {
		return c.RestoreBucket(ctx, BucketRestoreRequest{BackupName: "b1", TargetBucket: "photos-copy", Overwrite: true, From: "primary"})
	}},
	{"PruneTarget", func(ctx context.Context, c *Client) (any, error) { return c.PruneTarget(ctx, "app") }},
	{"DrillTarget", func(ctx context.Context, c *Client) (any, error) { return c.DrillTarget(ctx, "app") }},
	{"BaseBackupTarget", func(ctx context.Context, c *Client) (any, error) {
		return c.BaseBackupTarget(ctx, "app", WithIdempotencyKey("k-6"))
	}},
	{"CancelTask", func(ctx context.Context, c *Client) (any, error) { return c.CancelTask(ctx, "t-1") }},
	{"Task", func(ctx context.Context, c *Client) (any, error) { return c.Task(ctx, "t-1") }},
	{"WaitTask", func(ctx context.Context, c *Client) (any, error) {
		// The example task stays active: the wait ends with its context.
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		t, err := c.WaitTask(ctx, "t-1", WaitOptions{Interval: 10 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("WaitTask on an active task: %v, want the deadline", err)
		}
		return t, nil
	}},
	{"ListBackups", func(ctx context.Context, c *Client) (any, error) {
		return c.ListBackups(ctx, ListBackupsOptions{Stores: []string{"primary", "offsite"}, Database: "app", Target: "app",
			Since: "24h", Limit: 10, Cursor: "c1"})
	}},
	{"AllBackups", nil}, // follows cursors: TestAllBackupsFollowsPages
	{"FindBackup", nil},
	{"Targets", func(ctx context.Context, c *Client) (any, error) { return c.Targets(ctx) }},
	{"PrunePreview", func(ctx context.Context, c *Client) (any, error) { return c.PrunePreview(ctx, "app") }},
	{"Drills", func(ctx context.Context, c *Client) (any, error) { return c.Drills(ctx, DrillsOptions{Target: "app"}) }},
	{"Audit", func(ctx context.Context, c *Client) (any, error) { return c.Audit(ctx, 5) }},
}

// TestCallsMatchOpenAPI sends every call to a fake service that checks
// it against the document, and decodes the documented answers. Every
// method of Client must have a case here.
func TestCallsMatchOpenAPI(t *testing.T) {
	t.Parallel()
	f, c := newFakeAPI(t)
	covered := map[string]bool{"BaseURL": true}
	for _, tc := range every {
		covered[tc.method] = true
		if tc.call == nil {
			continue
		}
		out, err := tc.call(t.Context(), c)
		if err != nil {
			t.Errorf("%s: %v", tc.method, err)
			continue
		}
		if v := reflect.ValueOf(out); v.IsNil() || v.Elem().IsZero() {
			t.Errorf("%s: decoded nothing", tc.method)
		}
	}
	for m := range reflect.TypeFor[*Client]().Methods() {
		if !covered[m.Name] {
			t.Errorf("Client.%s has no case in TestCallsMatchOpenAPI", m.Name)
		}
	}
	if !slices.Contains(f.seen, "DELETE /api/admin/backup/{name}") {
		t.Errorf("a name with a slash did not reach DELETE /api/admin/backup/{name}: %v", f.seen)
	}
}
