package handlers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
)

func TestAuthorization(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "GET", "/api/admin/backup/list", "", 401},
		{"wrong token", "GET", "/api/admin/backup/list", "not-a-valid-token-at-all", 401},
		{"viewer lists", "GET", "/api/admin/backup/list", testViewer, 200},
		{"admin lists", "GET", "/api/admin/backup/list", testAdmin, 200},
		{"viewer may not create", "POST", "/api/admin/backup/create", testViewer, 403},
		{"viewer may not restore", "POST", "/api/admin/backup/restore", testViewer, 403},
		{"viewer may not delete", "DELETE", "/api/admin/backup/existing", testViewer, 403},
		{"viewer may not cancel", "POST", "/api/admin/tasks/x/cancel", testViewer, 403},
		{"viewer may not verify", "POST", "/api/admin/backup/existing/verify", testViewer, 403},
		{"admin creates", "POST", "/api/admin/backup/create", testAdmin, 202},
		{"monitoring needs a token", "GET", "/monitoring/", "", 401},
		{"healthz is open", "GET", "/healthz", "", 200},
		{"readyz is open", "GET", "/readyz", "", 200},
	}
	for _, tt := range tests {
		code, body := f.do(tt.method, tt.path, tt.token, nil)
		if code != tt.want {
			t.Errorf("%s: %s %s = %d %s, want %d", tt.name, tt.method, tt.path, code, body, tt.want)
		}
		if code >= 400 && !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("%s: error body %q is not {\"error\": ...}", tt.name, body)
		}
	}
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for token, want := range map[string]string{testViewer: `{"role":"viewer"}`, testAdmin: `{"role":"admin"}`} {
		if code, body := f.do("GET", "/api/whoami", token, nil); code != 200 || strings.TrimSpace(body) != want {
			t.Errorf("whoami = %d %s, want 200 %s", code, body, want)
		}
	}
	if code, _ := f.do("GET", "/api/whoami", "", nil); code != http.StatusUnauthorized {
		t.Errorf("whoami without a token = %d, want 401", code)
	}
}

func TestMonitoringRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, body := f.do("GET", "/monitoring/", testViewer, nil); code != http.StatusForbidden || strings.Contains(body, "ui") {
		t.Errorf("viewer got %d %q, want 403: even a read-only asynqmon shows errors and payloads", code, body)
	}
	if _, body := f.do("GET", "/monitoring/", testAdmin, nil); body != "full ui" {
		t.Errorf("admin got %q, want the full UI", body)
	}
	// A browser sends Basic auth with the token as password.
	req := "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:"+testAdmin))
	if got := presentedToken(req, true); got != testAdmin {
		t.Errorf("presentedToken(Basic) = %q, want the admin token", got)
	}
	code, _ := f.do("GET", "/monitoring", testAdmin, nil)
	if code != http.StatusFound {
		t.Errorf("/monitoring = %d, want a redirect to /monitoring/", code)
	}
}

func TestNewAuthRefusesNoAdmin(t *testing.T) {
	t.Parallel()
	if _, err := NewAuth(nil, []string{testViewer}, false); !errors.Is(err, ErrNoAdminToken) {
		t.Fatalf("NewAuth with no admin token: err = %v, want ErrNoAdminToken", err)
	}
	a, err := NewAuth(nil, nil, true)
	if err != nil || !a.Disabled {
		t.Fatalf("NewAuth disabled = %+v, %v", a, err)
	}
	b, _ := NewAuth([]string{testAdmin}, []string{testViewer}, false)
	if b.RoleFor(testAdmin) != RoleAdmin || b.RoleFor(testViewer) != RoleViewer || b.RoleFor(testAdmin+"x") != RoleNone || b.RoleFor("") != RoleNone {
		t.Fatal("RoleFor mapped tokens wrongly")
	}
}

func TestBadInputIs400AndEnqueuesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, body, wantMsg string
	}{
		{"unknown field", "POST", "/api/admin/backup/create", `{"backup_name":"a","colour":"red"}`, `unknown field \"colour\"`},
		{"wrong type", "POST", "/api/admin/backup/create", `{"upload_to_minio":"yes"}`, "upload_to_minio must be a boolean"},
		{"malformed", "POST", "/api/admin/backup/create", `{"format":`, "malformed JSON"},
		{"not an object", "POST", "/api/admin/backup/create", `[1,2]`, "must be a JSON object"},
		{"trailing data", "POST", "/api/admin/backup/create", `{} {}`, "unexpected data"},
		{"too big", "POST", "/api/admin/backup/create", `{"backup_name":"` + strings.Repeat("a", 1<<20) + `"}`, "exceeds"},
		{"unknown format", "POST", "/api/admin/backup/create", `{"format":"zip"}`, "unknown format"},
		{"bad database", "POST", "/api/admin/backup/create", `{"database":"a; DROP TABLE x"}`, "not a valid identifier"},
		{"traversal name", "POST", "/api/admin/backup/create", `{"backup_name":"../x"}`, "backup name"},
		{"slash name", "POST", "/api/admin/backup/create", `{"backup_name":"a/b"}`, "backup name"},
		{"space name", "POST", "/api/admin/backup/create", `{"backup_name":"a b"}`, "backup name"},
		{"nul name", "POST", "/api/admin/backup/create", `{"backup_name":"a\u0000b"}`, "backup name"},
		{"dot name", "POST", "/api/admin/backup/create", `{"backup_name":".hidden"}`, "backup name"},
		{"huge name", "POST", "/api/admin/backup/create", `{"backup_name":"` + strings.Repeat("x", 10240) + `"}`, "backup name"},
		{"bad query bool", "POST", "/api/admin/backup/create?upload_to_minio=maybe", ``, "want true or false"},
		{"restore without name", "POST", "/api/admin/backup/restore", `{}`, "backup_name is required"},
		{"restore bad target", "POST", "/api/admin/backup/restore", `{"backup_name":"existing","target_database":"x-y"}`, "not a valid identifier"},
		{"restore empty name", "POST", "/api/admin/backup/restore", `{"backup_name":""}`, "backup_name is required"},
		{"delete bad name", "DELETE", "/api/admin/backup/..", ``, "backup name"},
		{"delete nothing", "DELETE", "/api/admin/backup/existing?delete_local=false&delete_minio=false", ``, "nothing to do"},
		{"list bad flag", "GET", "/api/admin/backup/list?include_local=2", ``, "want true or false"},
		{"bad task id", "GET", "/api/admin/tasks/a%20b", ``, "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			code, body := f.do(tt.method, tt.path, testAdmin, strings.NewReader(tt.body))
			if code != http.StatusBadRequest || !strings.Contains(body, tt.wantMsg) {
				t.Fatalf("status %d body %s; want 400 mentioning %q", code, body, tt.wantMsg)
			}
			if n := f.queue.count(); n != 0 {
				t.Fatalf("%d tasks enqueued for a bad request", n)
			}
		})
	}
}

func TestNotFoundAndConflicts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"restore missing", "POST", "/api/admin/backup/restore", `{"backup_name":"nope"}`, 404},
		{"restore from the store that lacks it", "POST", "/api/admin/backup/restore", `{"backup_name":"only-minio","download_from_minio":false}`, 404},
		{"delete missing", "DELETE", "/api/admin/backup/nope", ``, 404},
		{"delete from the store that lacks it", "DELETE", "/api/admin/backup/only-minio?delete_minio=false", ``, 404},
		{"verify missing", "POST", "/api/admin/backup/nope/verify", ``, 404},
		{"unknown task", "GET", "/api/admin/tasks/nope", ``, 404},
		{"create existing", "POST", "/api/admin/backup/create", `{"backup_name":"existing"}`, 409},
	}
	for _, tt := range tests {
		if code, body := f.do(tt.method, tt.path, testAdmin, strings.NewReader(tt.body)); code != tt.want {
			t.Errorf("%s: status %d %s, want %d", tt.name, code, body, tt.want)
		}
	}
	if n := f.queue.count(); n != 0 {
		t.Fatalf("%d tasks enqueued for requests that were refused", n)
	}
}

func TestConcurrentSameNameAndSameTargetAre409(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, body := f.do("POST", "/api/admin/backup/create", testAdmin, strings.NewReader(`{"backup_name":"fresh"}`)); code != 202 {
		t.Fatalf("first create: %d %s", code, body)
	}
	code, body := f.do("POST", "/api/admin/backup/create", testAdmin, strings.NewReader(`{"backup_name":"fresh"}`))
	if code != 409 || !strings.Contains(body, "already being created") {
		t.Fatalf("second create of a queued name: %d %s, want 409", code, body)
	}
	if code, body := f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"existing","target_database":"t1"}`)); code != 202 {
		t.Fatalf("first restore: %d %s", code, body)
	}
	code, body = f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"only-minio","target_database":"t1"}`))
	if code != 409 || !strings.Contains(body, "restore into database t1") {
		t.Fatalf("second restore into t1: %d %s, want 409", code, body)
	}
	if code, _ := f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"existing","target_database":"t2"}`)); code != 202 {
		t.Fatalf("restore into another database: %d, want 202", code)
	}
	if n := f.queue.count(); n != 3 {
		t.Fatalf("%d tasks enqueued, want 3", n)
	}
}

func TestRedisDownIs503WithoutDetail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.queue.err = errSecret
	f.pingErr = errSecret
	code, body := f.do("POST", "/api/admin/backup/create", testAdmin, strings.NewReader(`{"backup_name":"n1"}`))
	if code != 503 || strings.Contains(body, "hunter2") || strings.Contains(body, "10.0.0.5") {
		t.Fatalf("enqueue with Redis down: %d %s, want 503 without internal detail", code, body)
	}
	// The failed enqueue released its name reservation.
	f.queue.err = nil
	if code, body := f.do("POST", "/api/admin/backup/create", testAdmin, strings.NewReader(`{"backup_name":"n1"}`)); code != 202 {
		t.Fatalf("create after Redis is back: %d %s", code, body)
	}
	if code, _ := f.do("GET", "/readyz", "", nil); code != 503 {
		t.Fatalf("readyz with Redis down = %d, want 503", code)
	}
	f.backups.err = errSecret
	code, body = f.do("GET", "/api/admin/backup/list", testAdmin, nil)
	if code != 500 || strings.Contains(body, "hunter2") {
		t.Fatalf("unexpected error: %d %s, want 500 with no detail", code, body)
	}
	for _, tok := range []string{testAdmin, testViewer} {
		if strings.Contains(f.logs.String(), tok) {
			t.Fatal("a token appeared in the log")
		}
	}
}

func TestCreateAcceptsQueryParametersAndGeneratesNames(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	code, body := f.do("POST", "/api/admin/backup/create?backup_name=q1&format=tar&upload_to_minio=false", testAdmin, nil)
	if code != 202 {
		t.Fatalf("create via query: %d %s", code, body)
	}
	var p tasks.BackupPayload
	_ = json.Unmarshal(f.queue.tasks[0].Payload(), &p)
	if p.BackupName != "q1" || p.Format != "tar" || strings.Join(p.Stores, ",") != store.LocalName {
		t.Fatalf("payload = %+v, want q1/tar/[local]", p)
	}
	code, body = f.do("POST", "/api/admin/backup/create", testAdmin, nil)
	var resp map[string]string
	_ = json.Unmarshal([]byte(body), &resp)
	if code != 202 || !strings.HasPrefix(resp["backup_name"], "autograph_backup_") || len(resp["backup_name"]) != len("autograph_backup_20060102_150405") {
		t.Fatalf("generated name: %d %s", code, body)
	}
	_ = json.Unmarshal(f.queue.tasks[1].Payload(), &p)
	if strings.Join(p.Stores, ",") != store.LocalName+","+store.MinIOName || p.Format != "custom" {
		t.Fatalf("defaults with MinIO configured = %+v, want custom to [local minio]", p)
	}
	if strings.Contains(string(f.queue.tasks[1].Payload()), "password") {
		t.Fatal("task payload mentions a password")
	}
}

func TestCancelArchivesAndMarks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.insp.tasks["t-active"] = &asynq.TaskInfo{ID: "t-active", Queue: "backup", State: asynq.TaskStateActive}
	f.insp.tasks["t-done"] = &asynq.TaskInfo{ID: "t-done", Queue: "backup", State: asynq.TaskStateCompleted}
	code, body := f.do("POST", "/api/admin/tasks/t-active/cancel", testAdmin, nil)
	if code != 202 || !strings.Contains(body, `"state":"archived"`) {
		t.Fatalf("cancel active: %d %s, want 202 archived", code, body)
	}
	if !f.locks.cancelled["t-active"] || len(f.insp.cancelled) != 1 || len(f.insp.archived) != 1 {
		t.Fatalf("cancel did not mark (%v), cancel (%v) and archive (%v)", f.locks.cancelled, f.insp.cancelled, f.insp.archived)
	}
	if code, _ := f.do("POST", "/api/admin/tasks/t-done/cancel", testAdmin, nil); code != 409 {
		t.Fatalf("cancel completed task: %d, want 409", code)
	}
	if code, _ := f.do("POST", "/api/admin/tasks/nope/cancel", testAdmin, nil); code != 404 {
		t.Fatalf("cancel unknown task: %d, want 404", code)
	}
}

func TestReservationOfVanishedTaskIsReclaimed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A task that holds the name but was deleted from the queue by hand.
	f.locks.held[tasks.ScopeName+":orphaned"] = "deleted-task"
	if code, body := f.do("POST", "/api/admin/backup/create", testAdmin, strings.NewReader(`{"backup_name":"orphaned"}`)); code != 202 {
		t.Fatalf("create with a reservation held by a vanished task: %d %s, want 202", code, body)
	}
	// A task that still runs keeps its reservation.
	f.insp.tasks["running"] = &asynq.TaskInfo{ID: "running", Queue: "restore", State: asynq.TaskStateActive}
	f.locks.held[tasks.ScopeRestore+":busydb"] = "running"
	if code, _ := f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"existing","target_database":"busydb"}`)); code != 409 {
		t.Fatalf("restore into a database with a running restore: %d, want 409", code)
	}
	f.insp.tasks["running"].State = asynq.TaskStateCompleted
	if code, _ := f.do("POST", "/api/admin/backup/restore", testAdmin, strings.NewReader(`{"backup_name":"existing","target_database":"busydb"}`)); code != 202 {
		t.Fatalf("restore after the holder completed: %d, want 202", code)
	}
}

func TestBackupsPageIsServed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	code, body := f.do("GET", "/ui/", "", nil)
	if code != 200 || !strings.Contains(body, "<title>pgbackup</title>") || !strings.Contains(body, `<script src="app.js">`) {
		t.Fatalf("GET /ui/ = %d, want the backups page", code)
	}
	if code, body := f.do("GET", "/ui/app.js", "", nil); code != 200 || !strings.Contains(body, "/api/admin/backup/list") {
		t.Fatalf("GET /ui/app.js = %d, want the page's script", code)
	}
	if code, _ := f.do("GET", "/", "", nil); code != http.StatusFound {
		t.Fatalf("GET / = %d, want a redirect to /ui/", code)
	}
}

// payloadOf decodes the i-th enqueued task's payload.
func payloadOf[P any](t *testing.T, f *fixture, i int) P {
	t.Helper()
	var p P
	if f.queue.count() <= i {
		t.Fatalf("only %d tasks enqueued, want task %d", f.queue.count(), i)
	}
	if err := json.Unmarshal(f.queue.tasks[i].Payload(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStoresByName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A third backend the API has never heard of, configured beside them.
	f.backups.stores = append(f.backups.stores, "vault")
	do := func(method, target, body string, want int) {
		t.Helper()
		if code, resp := f.do(method, target, testAdmin, strings.NewReader(body)); code != want {
			t.Fatalf("%s %s %s: %d %s, want %d", method, target, body, code, resp, want)
		}
	}
	do("POST", "/api/admin/backup/create", `{"backup_name":"n1","stores":["vault","minio","vault"]}`, 202)
	if p := payloadOf[tasks.BackupPayload](t, f, 0); !slices.Equal(p.Stores, []string{"vault", store.MinIOName}) {
		t.Fatalf("create stores = %v, want [vault minio] (order kept, duplicate dropped)", p.Stores)
	}
	do("POST", "/api/admin/backup/create", `{"backup_name":"n2"}`, 202)
	if p := payloadOf[tasks.BackupPayload](t, f, 1); !slices.Equal(p.Stores, f.backups.stores) {
		t.Fatalf("create without stores = %v, want every configured store %v", p.Stores, f.backups.stores)
	}
	do("POST", "/api/admin/backup/create?stores=vault", `{"backup_name":"n3"}`, 202)
	if p := payloadOf[tasks.BackupPayload](t, f, 2); !slices.Equal(p.Stores, []string{"vault"}) {
		t.Fatalf("create ?stores=vault = %v", p.Stores)
	}
	do("POST", "/api/admin/backup/restore", `{"backup_name":"existing","from":"minio","target_database":"r1"}`, 202)
	if p := payloadOf[tasks.RestorePayload](t, f, 3); p.From != store.MinIOName {
		t.Fatalf("restore from = %q, want minio", p.From)
	}
	do("DELETE", "/api/admin/backup/existing", `{"stores":["minio"]}`, 202)
	if p := payloadOf[tasks.DeletePayload](t, f, 4); !slices.Equal(p.Stores, []string{store.MinIOName}) {
		t.Fatalf("delete stores = %v, want [minio]", p.Stores)
	}
	do("DELETE", "/api/admin/backup/existing?stores=local,minio", ``, 202)
	if p := payloadOf[tasks.DeletePayload](t, f, 5); !slices.Equal(p.Stores, []string{store.LocalName, store.MinIOName}) {
		t.Fatalf("delete ?stores = %v, want [local minio]", p.Stores)
	}
	do("GET", "/api/admin/backup/list?stores=vault", ``, 200)
	if got := f.backups.listed[len(f.backups.listed)-1]; !slices.Equal(got, []string{"vault"}) {
		t.Fatalf("list ?stores=vault read %v", got)
	}
	do("GET", "/api/admin/backup/list", ``, 200)
	if got := f.backups.listed[len(f.backups.listed)-1]; !slices.Equal(got, f.backups.stores) {
		t.Fatalf("list without stores read %v, want every configured store", got)
	}
	do("POST", "/api/admin/backup/existing/verify?from=minio", ``, 202)
	if p := payloadOf[tasks.VerifyPayload](t, f, 6); p.From != store.MinIOName {
		t.Fatalf("verify from = %q, want minio", p.From)
	}
	// The old flags still map exactly as before, and keep the new store.
	do("DELETE", "/api/admin/backup/existing?delete_local=false", ``, 202)
	if p := payloadOf[tasks.DeletePayload](t, f, 7); !slices.Equal(p.Stores, []string{store.MinIOName, "vault"}) {
		t.Fatalf("delete_local=false = %v, want [minio vault]", p.Stores)
	}
	if n := f.queue.count(); n != 8 {
		t.Fatalf("%d tasks enqueued, want 8", n)
	}
}

func TestBadStoreNamesAre400(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct{ name, method, target, body, want string }{
		{"unknown store", "POST", "/api/admin/backup/create", `{"stores":["s3"]}`, `store \"s3\" is not configured (configured: local, minio)`},
		{"empty list", "POST", "/api/admin/backup/create", `{"stores":[]}`, "must name at least one store"},
		{"stores and flag", "POST", "/api/admin/backup/create", `{"stores":["local"],"upload_to_minio":true}`, "not both"},
		{"stores not a list", "POST", "/api/admin/backup/create", `{"stores":"local"}`, "field stores must be a"},
		{"unknown from", "POST", "/api/admin/backup/restore", `{"backup_name":"existing","from":"tape"}`, `store \"tape\" is not configured`},
		{"from and flag", "POST", "/api/admin/backup/restore", `{"backup_name":"existing","from":"local","download_from_minio":true}`, "not both"},
		{"delete unknown store", "DELETE", "/api/admin/backup/existing", `{"stores":["tape"]}`, "not configured"},
		{"delete two ways", "DELETE", "/api/admin/backup/existing?delete_minio=false", `{"stores":["local"]}`, "one way only"},
		{"list unknown store", "GET", "/api/admin/backup/list?stores=tape", ``, "not configured"},
		{"verify unknown store", "POST", "/api/admin/backup/existing/verify?from=tape", ``, "not configured"},
		{"verify unknown store in body", "POST", "/api/admin/backup/existing/verify", `{"from":"tape"}`, "not configured"},
	}
	for _, tt := range tests {
		code, body := f.do(tt.method, tt.target, testAdmin, strings.NewReader(tt.body))
		if code != 400 || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s, want 400 containing %q", tt.name, code, body, tt.want)
		}
	}
	if n := f.queue.count(); n != 0 {
		t.Fatalf("%d tasks enqueued by bad requests", n)
	}
}

func TestCancelFollowsTheRequestContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.insp.stuck = true
	f.insp.tasks["slow"] = &asynq.TaskInfo{ID: "slow", Queue: "backup", State: asynq.TaskStateActive}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("POST", "/api/admin/tasks/slow/cancel", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	done := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		f.e.ServeHTTP(rec, req)
		done <- rec.Code
	}()
	cancel() // the client hangs up while the handler is still running
	select {
	case code := <-done:
		if code != 202 || !f.locks.cancelled["slow"] {
			t.Fatalf("cancel = %d, marked %v; want 202 and the task marked cancelled", code, f.locks.cancelled["slow"])
		}
	case <-time.After(cancelWait / 2):
		t.Fatal("cancel kept the request waiting after its context ended")
	}
}

func TestListPagesAndFilters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := 9; i >= 0; i-- { // newest first
		db := "shop"
		if i%2 == 1 {
			db = "audit"
		}
		f.backups.entries = append(f.backups.entries, engine.Entry{Manifest: engine.Manifest{
			Name: engine.MustParseName(fmt.Sprintf("b%02d", i)), Database: db, Format: engine.FormatCustom, FinishedAt: base.Add(time.Duration(i) * time.Hour),
			ArchiveKey: fmt.Sprintf("postgres/b%02d.dump.zst", i), Codec: "zstd:3"}, Locations: []string{store.LocalName}})
	}
	page := func(q string) (names []string, next string) {
		t.Helper()
		code, body := f.do("GET", "/api/admin/backup/list?"+q, testViewer, nil)
		if code != 200 {
			t.Fatalf("list?%s: %d %s", q, code, body)
		}
		var out struct {
			Backups []struct {
				BackupName string `json:"backup_name"`
				ArchiveKey string `json:"archive_key"`
				Codec      string `json:"codec"`
			} `json:"backups"`
			Next  string `json:"next_cursor"`
			Total int    `json:"total"`
		}
		_ = json.Unmarshal([]byte(body), &out)
		for _, b := range out.Backups {
			if b.ArchiveKey == "" || b.Codec != "zstd:3" {
				t.Fatalf("entry %+v lacks its archive key or codec", b)
			}
			names = append(names, b.BackupName)
		}
		return names, out.Next
	}
	var all []string
	cursor := ""
	for i := 0; i < 5; i++ {
		names, next := page("limit=3&cursor=" + cursor)
		all = append(all, names...)
		if next == "" {
			break
		}
		cursor = next
	}
	want := []string{"b09", "b08", "b07", "b06", "b05", "b04", "b03", "b02", "b01", "b00"}
	if !slices.Equal(all, want) {
		t.Fatalf("pages gave %v, want %v", all, want)
	}
	if names, next := page("database=shop&limit=2"); !slices.Equal(names, []string{"b08", "b06"}) || next == "" {
		t.Fatalf("database=shop&limit=2 = %v next %q", names, next)
	}
	since := base.Add(7 * time.Hour).Format(time.RFC3339)
	if names, _ := page("since=" + since); !slices.Equal(names, []string{"b09", "b08", "b07"}) {
		t.Fatalf("since=%s = %v", since, names)
	}
	for _, bad := range []string{"limit=0", "limit=1001", "limit=x", "cursor=bm90LWEtY3Vyc29y", "since=yesterday", "target=nope"} {
		if code, _ := f.do("GET", "/api/admin/backup/list?"+bad, testViewer, nil); code != 400 && code != 404 {
			t.Errorf("list?%s = %d, want 400 or 404", bad, code)
		}
	}
}
