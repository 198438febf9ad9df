package handlers

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/jobs/tasks"
)

func basic(token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("someone:"+token))
}

func TestCrossSiteRequestsAreRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create := `{"backup_name":"xs"}`
	tests := []struct {
		name    string
		method  string
		target  string
		body    string
		headers map[string]string
		want    int
	}{
		{"foreign origin", "POST", "/api/admin/backup/create", create, map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site fetch", "DELETE", "/api/admin/backup/existing", ``, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"foreign origin to an unknown route", "POST", "/api/nowhere", ``, map[string]string{"Origin": "https://evil.example"}, 403},
		{"queue UI action with the browser's Basic credentials", "POST", "/monitoring/api/queues/backup:pause", ``,
			map[string]string{"Authorization": basic(testAdmin), "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"same origin", "POST", "/api/admin/backup/create", create, map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}, 202},
	}
	for _, tt := range tests {
		var body *strings.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		token := testAdmin
		if tt.headers["Authorization"] != "" {
			token = ""
		}
		var code int
		var resp string
		if body == nil {
			code, resp = f.doWith(tt.method, tt.target, token, nil, tt.headers)
		} else {
			code, resp = f.doWith(tt.method, tt.target, token, body, tt.headers)
		}
		if code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, resp, tt.want)
		}
	}
	if n := f.queue.count(); n != 1 {
		t.Fatalf("%d tasks enqueued, want only the same-origin one", n)
	}
	if n := f.monitorCalls.Load(); n != 0 {
		t.Fatalf("the queue UI received %d cross-site actions", n)
	}
}

func TestBasicAuthOnlyOpensTheQueueUI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, _ := f.doWith("GET", "/api/admin/backup/list", "", nil, map[string]string{"Authorization": basic(testAdmin)}); code != 401 {
		t.Fatalf("Basic credentials on /api: %d, want 401 (bearer only)", code)
	}
	if code, body := f.doWith("GET", "/monitoring/", "", nil, map[string]string{"Authorization": basic(testAdmin)}); code != 200 || body != "full ui" {
		t.Fatalf("Basic credentials on /monitoring/: %d %q, want the full UI", code, body)
	}
}

// TestViewersGetNoQueueUI: asynqmon shows full task errors and payloads
// (webhook URLs, host and database names) even read-only, so a viewer
// gets none of it, by any method, bearer or Basic.
func TestViewersGetNoQueueUI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, m := range []string{"GET", "HEAD", "POST", "DELETE", "PUT", "PATCH"} {
		for _, path := range []string{"/monitoring", "/monitoring/", "/monitoring/api/queues", "/monitoring/api/queues/backup:pause"} {
			if code, _ := f.do(m, path, testViewer, nil); code != http.StatusForbidden {
				t.Errorf("viewer %s %s: %d, want 403", m, path, code)
			}
		}
	}
	if code, _ := f.doWith("GET", "/monitoring/api/queues", "", nil, map[string]string{"Authorization": basic(testViewer)}); code != http.StatusForbidden {
		t.Errorf("viewer with Basic credentials: %d, want 403", code)
	}
	if f.monitorCalls.Load() != 0 {
		t.Fatal("a viewer reached the queue UI")
	}
	if code, body := f.do("GET", "/monitoring/api/queues", testAdmin, nil); code != 200 || body != "full ui" {
		t.Fatalf("admin: %d %q, want the queue UI", code, body)
	}
}

func TestVerifyIsAPostAndBodiesAreJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	req := httptest.NewRequest("GET", "/api/admin/backup/existing/verify", nil)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	if rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
		t.Fatalf("GET verify: %d Allow=%q, want 405 Allow: POST", rec.Code, rec.Header().Get("Allow"))
	}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		code, body := f.doWith("POST", "/api/admin/backup/create", testAdmin, strings.NewReader(`{"backup_name":"ct"}`),
			map[string]string{"Content-Type": ct})
		if code != 415 {
			t.Errorf("Content-Type %q: %d %s, want 415", ct, code, body)
		}
	}
	if code, _ := f.doWith("POST", "/api/admin/backup/create", testAdmin, strings.NewReader(`{"backup_name":"ct"}`),
		map[string]string{"Content-Type": "application/json; charset=utf-8"}); code != 202 {
		t.Fatalf("JSON with a charset: %d, want 202", code)
	}
	if code, _ := f.do("POST", "/api/admin/backup/create?backup_name=viaquery", testAdmin, nil); code != 202 {
		t.Fatalf("the old service's query parameters: %d, want 202", code)
	}
	if code, _ := f.do("POST", "/api/admin/backup/existing/verify", testAdmin, strings.NewReader(`{"from":"minio"}`)); code != 202 {
		t.Fatalf("POST verify: %d, want 202", code)
	}
	if n := f.queue.count(); n != 3 {
		t.Fatalf("%d tasks enqueued, want 3", n)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, path := range []string{"/ui/", "/ui/app.js", "/api/admin/backup/list", "/api/nowhere", "/healthz"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+testViewer)
		rec := httptest.NewRecorder()
		f.e.ServeHTTP(rec, req)
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
			if got := rec.Header().Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", path, h, got, want)
			}
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if strings.HasPrefix(path, "/ui/") && (!strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'")) {
			t.Errorf("%s: Content-Security-Policy %q, want scripts from the page's origin only", path, csp)
		}
	}
	page, err := os.ReadFile("../web/static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if inline := regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]|\son[a-z]+=|style=`).Find(page); inline != nil {
		t.Fatalf("the page has inline script or style, which its policy forbids: %q", inline)
	}
}

func TestClientAddressTrustsOnlyConfiguredProxies(t *testing.T) {
	t.Parallel()
	send := func(f *fixture) string {
		req := httptest.NewRequest("POST", "/api/admin/backup/create?backup_name=ip"+strconv.Itoa(f.queue.count()), nil)
		req.Header.Set("Authorization", "Bearer "+testAdmin)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		req.RemoteAddr = "192.0.2.10:40000"
		f.e.ServeHTTP(httptest.NewRecorder(), req)
		return f.audit.entries[0].Client
	}
	if got := send(newFixture(t)); got != "192.0.2.10" {
		t.Fatalf("no trusted proxies: client %q, want the peer 192.0.2.10 whatever X-Forwarded-For says", got)
	}
	_, proxy, _ := net.ParseCIDR("192.0.2.0/24")
	if got := send(newFixtureWith(t, func(d *Deps) { d.TrustedProxies = []*net.IPNet{proxy} })); got != "203.0.113.7" {
		t.Fatalf("behind a trusted proxy: client %q, want 203.0.113.7", got)
	}
}

func TestFailedAuthenticationIsRateLimited(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, func(d *Deps) { d.AuthFailuresPerMinute = 5 })
	from := func(addr, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/admin/backup/list", nil)
		req.RemoteAddr = addr + ":5555"
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		f.e.ServeHTTP(rec, req)
		return rec
	}
	// Successful requests are never counted.
	for range 50 {
		if rec := from("198.51.100.1", testViewer); rec.Code != 200 {
			t.Fatalf("valid token: %d", rec.Code)
		}
	}
	for i := range 5 {
		if rec := from("198.51.100.2", "wrong-token-guess-00000"+strconv.Itoa(i)); rec.Code != 401 {
			t.Fatalf("guess %d: %d, want 401", i, rec.Code)
		}
	}
	rec := from("198.51.100.2", "wrong-token-guess-000009")
	if rec.Code != 429 {
		t.Fatalf("guess past the limit: %d, want 429", rec.Code)
	}
	if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After %q, want 1 to 60 seconds", rec.Header().Get("Retry-After"))
	}
	// Admins behind the same address (a NAT, a proxy) are never locked out
	// by a stranger's failures: a valid token always passes...
	for _, token := range []string{testAdmin, testViewer} {
		if rec := from("198.51.100.2", token); rec.Code != 200 {
			t.Fatalf("blocked address with a valid token: %d, want 200", rec.Code)
		}
	}
	req := httptest.NewRequest("POST", "/api/admin/backup/create", strings.NewReader(`{"backup_name":"behind-nat"}`))
	req.RemoteAddr = "198.51.100.2:5555"
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	req.Header.Set("Content-Type", "application/json")
	create := httptest.NewRecorder()
	f.e.ServeHTTP(create, req)
	if create.Code != 202 {
		t.Fatalf("an admin's backup from the blocked address: %d %s, want 202", create.Code, create.Body)
	}
	// ...while failures from it are still refused.
	if rec := from("198.51.100.2", "wrong-token-guess-000010"); rec.Code != 429 {
		t.Fatalf("another guess from the blocked address: %d, want 429", rec.Code)
	}
	if rec := from("198.51.100.3", testViewer); rec.Code != 200 {
		t.Fatalf("another address: %d, want 200", rec.Code)
	}
	if rec := from("198.51.100.1", testViewer); rec.Code != 200 {
		t.Fatalf("the address that only ever succeeded: %d, want 200", rec.Code)
	}
}

func TestAdminActionsAreAudited(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, _ := f.do("POST", "/api/admin/backup/create", testAdmin, strings.NewReader(`{"backup_name":"audited"}`)); code != 202 {
		t.Fatal(code)
	}
	if code, _ := f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"nope","target_database":"t1"}`)); code != 404 {
		t.Fatal(code)
	}
	f.do("GET", "/api/admin/backup/list", testAdmin, nil) // reads are not audited
	code, body := f.do("GET", "/api/admin/audit?limit=5", testAdmin, nil)
	if code != 200 {
		t.Fatalf("GET audit: %d %s", code, body)
	}
	var out struct {
		Entries []map[string]any `json:"entries"`
	}
	_ = json.Unmarshal([]byte(body), &out)
	if len(out.Entries) != 2 {
		t.Fatalf("audit entries = %v, want 2", out.Entries)
	}
	newest, oldest := out.Entries[0], out.Entries[1]
	if newest["action"] != "POST /api/admin/backup/restore" || newest["backup"] != "nope" || newest["target"] != "t1" || newest["status"] != float64(404) {
		t.Errorf("newest entry = %v, want the refused restore of nope into t1", newest)
	}
	if oldest["backup"] != "audited" || oldest["status"] != float64(202) || oldest["token_fingerprint"] != TokenFingerprint(testAdmin) || oldest["client"] == "" {
		t.Errorf("oldest entry = %v, want the accepted create with the token's fingerprint and client", oldest)
	}
	if code, _ := f.do("GET", "/api/admin/audit?limit=1", testViewer, nil); code != 403 {
		t.Fatalf("viewer reading the audit: %d, want 403", code)
	}
	if code, _ := f.do("GET", "/api/admin/audit?limit=0", testAdmin, nil); code != 400 {
		t.Fatalf("limit=0: %d, want 400", code)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"audit":true`) || !strings.Contains(logs, `"action":"POST /api/admin/backup/create"`) {
		t.Fatalf("no audit log line in %s", logs)
	}
	if strings.Contains(logs, testAdmin) {
		t.Fatal("the audit log holds a token")
	}
}

// TestViewersCannotFloodTheAuditTrail: the trail is a bounded list, so a
// viewer's refused requests must not be in it, or they would push the admin
// actions out. They are on the audit log, marked refused.
func TestViewersCannotFloodTheAuditTrail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, _ := f.do("POST", "/api/admin/backup/create", testAdmin, strings.NewReader(`{"backup_name":"kept"}`)); code != 202 {
		t.Fatal(code)
	}
	for i := range 20 {
		for _, r := range []struct{ method, path string }{
			{"POST", "/api/admin/backup/create"}, {"DELETE", "/api/admin/backup/kept"},
			{"POST", "/api/admin/tasks/x" + strconv.Itoa(i) + "/cancel"}, {"POST", "/monitoring/api/queues/backup:pause"},
		} {
			if code, _ := f.do(r.method, r.path, testViewer, strings.NewReader(`{}`)); code != 403 {
				t.Fatalf("viewer %s %s: %d, want 403", r.method, r.path, code)
			}
		}
	}
	_, body := f.do("GET", "/api/admin/audit?limit=1000", testAdmin, nil)
	var out struct {
		Entries []map[string]any `json:"entries"`
	}
	_ = json.Unmarshal([]byte(body), &out)
	if len(out.Entries) != 1 || out.Entries[0]["backup"] != "kept" {
		t.Fatalf("audit trail = %v, want only the admin's create: a viewer's refused requests filled it", out.Entries)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"msg":"refused action"`) || !strings.Contains(logs, TokenFingerprint(testViewer)) {
		t.Fatalf("no refused-action line with the viewer's fingerprint on the audit log: %s", logs)
	}
}

func TestTaskErrorsAreClassifiedForViewers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	detail := "connect 10.0.0.5:5432 as bob: dial tcp: connection refused " + strings.Repeat("x", 3000)
	f.insp.tasks["failed"] = &asynq.TaskInfo{ID: "failed", Queue: "backup", State: asynq.TaskStateArchived,
		LastErr: "postgres unreachable: " + detail}
	f.insp.tasks["recovered"] = &asynq.TaskInfo{ID: "recovered", Queue: "backup", State: asynq.TaskStateCompleted,
		LastErr: "store unavailable: minio put postgres/x.dump: dial tcp 10.0.0.6:9000: refused"}
	f.insp.tasks["old"] = &asynq.TaskInfo{ID: "old", Queue: "backup", State: asynq.TaskStateRetry, LastErr: "pg_dump: exit status 1: /srv/secret"}
	get := func(id, token string) map[string]any {
		code, body := f.do("GET", "/api/admin/tasks/"+id, token, nil)
		if code != 200 {
			t.Fatalf("GET task %s: %d", id, code)
		}
		var out map[string]any
		_ = json.Unmarshal([]byte(body), &out)
		if token == testViewer && (strings.Contains(body, "10.0.0.") || strings.Contains(body, "bob") || strings.Contains(body, "/srv/")) {
			t.Fatalf("a viewer sees detail: %s", body)
		}
		return out
	}
	if v := get("failed", testViewer); v["error"] != "postgres unreachable" || v["error_detail"] != nil {
		t.Errorf("viewer sees %v, want only the class", v)
	}
	a := get("failed", testAdmin)
	if d, _ := a["error_detail"].(string); a["error"] != "postgres unreachable" || !strings.HasPrefix(d, "connect 10.0.0.5:5432") || len(d) != 2048 {
		t.Errorf("admin sees error %v and %d bytes of detail, want the class and 2 KiB of detail", a["error"], len(d))
	}
	if v := get("recovered", testViewer); v["error"] != "" || v["last_attempt_error"] != "store unavailable" {
		t.Errorf("a completed task shows error %q, last_attempt_error %q; want none and the earlier class", v["error"], v["last_attempt_error"])
	}
	if v := get("old", testViewer); v["error"] != "task failed" {
		t.Errorf("an unclassified error shows %q, want the generic class", v["error"])
	}
}

// TestViewersSeeNoPayloadOrWorker: a task's payload may name databases,
// buckets or a webhook, and its worker is a host name; only admins see them.
func TestViewersSeeNoPayloadOrWorker(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	result, _ := json.Marshal(tasks.Result{Worker: "db-host-7.internal:4242", Outcome: map[string]any{"status": 500}})
	f.insp.tasks["alert"] = &asynq.TaskInfo{ID: "alert", Queue: tasks.QueueAlerts, Type: tasks.TypeAlertDeliver, State: asynq.TaskStateRetry,
		Payload: []byte(`{"url":"https://hooks.example.com/secret-path","event":{"event":"backup.failed"}}`),
		LastErr: "task failed: alert to webhook: answered 500", Result: result}
	code, body := f.do("GET", "/api/admin/tasks/alert", testViewer, nil)
	if code != 200 {
		t.Fatalf("viewer GET task: %d %s", code, body)
	}
	for _, leak := range []string{"hooks.example.com", "secret-path", "db-host-7", `"payload"`, `"worker"`, "answered 500"} {
		if strings.Contains(body, leak) {
			t.Errorf("a viewer sees %q in %s", leak, body)
		}
	}
	_, body = f.do("GET", "/api/admin/tasks/alert", testAdmin, nil)
	for _, want := range []string{"hooks.example.com", "db-host-7", "answered 500"} {
		if !strings.Contains(body, want) {
			t.Errorf("an admin does not see %q in %s", want, body)
		}
	}
}

func TestRestoreTargetsAndModes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, body := f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"existing"}`)); code != 202 {
		t.Fatalf("restore without target: %d %s", code, body)
	}
	var p tasks.RestorePayload
	_ = json.Unmarshal(f.queue.tasks[0].Payload(), &p)
	if p.TargetDatabase != "origin_db" {
		t.Fatalf("restore without target goes to %q, want the backup's own database origin_db", p.TargetDatabase)
	}
	code, body := f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"plain-one","target_database":"t2","clean":true}`))
	if code != 400 || !strings.Contains(body, `\"replace\": true`) {
		t.Fatalf("clean restore of a plain archive: %d %s, want 400 naming replace", code, body)
	}
	if code, _ := f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"existing","target_database":"t3","clean":true,"replace":true}`)); code != 400 {
		t.Fatalf("clean and replace together: %d, want 400", code)
	}
	if code, body := f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"plain-one","target_database":"t4","replace":true,"allow_unsigned":true}`)); code != 202 {
		t.Fatalf("replace of a plain archive: %d %s", code, body)
	}
	_ = json.Unmarshal(f.queue.tasks[1].Payload(), &p)
	if !p.Replace || !p.AllowUnsigned || p.Clean {
		t.Fatalf("payload %+v, want replace and allow_unsigned", p)
	}
	if n := f.queue.count(); n != 2 {
		t.Fatalf("%d tasks enqueued, want 2", n)
	}
}
