package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/store"
)

// openAPIChecker validates real answers against the document the API
// serves, with every object schema closed: a field the server sends that
// the document does not name fails, whether or not the document says
// "additionalProperties": false itself (TestOpenAPISchemasClosed in
// handlers checks that it does). It remembers which operations it saw.
type openAPIChecker struct {
	t        *testing.T
	compiler *jsonschema.Compiler
	// declared are the operations ("GET /api/whoami") with a JSON answer
	// for success; covered, those a checked answer came from.
	declared, covered map[string]bool
}

// documentSchema is the answer schema of GET /api/openapi.json: OpenAPI's
// own, left open.
const documentSchema = "/paths/~1api~1openapi.json/get/responses/200/content/application~1json/schema"

func newOpenAPIChecker(t *testing.T, raw []byte) *openAPIChecker {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	ck := &openAPIChecker{t: t, declared: map[string]bool{}, covered: map[string]bool{}}
	paths, _ := doc["paths"].(map[string]any)
	for p, item := range paths {
		for m, op := range item.(map[string]any) {
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			for code, resp := range responses {
				content, _ := resp.(map[string]any)["content"].(map[string]any)
				if _, ok := content["application/json"]; ok && strings.HasPrefix(code, "2") {
					ck.declared[strings.ToUpper(m)+" "+p] = true
				}
			}
		}
	}
	closeObjects(doc, "")
	ck.compiler = jsonschema.NewCompiler()
	ck.compiler.DefaultDraft(jsonschema.Draft2020)
	if err := ck.compiler.AddResource("openapi.json", doc); err != nil {
		t.Fatal(err)
	}
	return ck
}

// closeObjects sets "additionalProperties": false on every object schema
// that does not say otherwise, but the document's own.
func closeObjects(v any, ptr string) {
	switch v := v.(type) {
	case map[string]any:
		if _, props := v["properties"]; (v["type"] == "object" || props) && ptr != documentSchema {
			if _, set := v["additionalProperties"]; !set {
				v["additionalProperties"] = false
			}
		}
		for k, sub := range v {
			closeObjects(sub, ptr+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"))
		}
	case []any:
		for i, sub := range v {
			closeObjects(sub, ptr+"/"+strconv.Itoa(i))
		}
	}
}

// check validates one successful answer of op ("POST /api/admin/backup/create",
// the path as the document writes it) against the schema of its status.
func (ck *openAPIChecker) check(op string, r *client.Response) {
	ck.t.Helper()
	if !ck.declared[op] {
		ck.t.Fatalf("%s: no such operation with a JSON answer in openapi.json", op)
	}
	if r.StatusCode < 200 || r.StatusCode > 299 {
		ck.t.Fatalf("%s: status %d, want success: %s", op, r.StatusCode, r.Body)
	}
	method, path, _ := strings.Cut(op, " ")
	ptr := "openapi.json#/paths/" + strings.ReplaceAll(path, "/", "~1") + "/" + strings.ToLower(method) +
		"/responses/" + strconv.Itoa(r.StatusCode) + "/content/application~1json/schema"
	sch, err := ck.compiler.Compile(ptr)
	if err != nil {
		ck.t.Fatalf("%s: status %d: %v", op, r.StatusCode, err)
	}
	body, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Body))
	if err != nil {
		ck.t.Fatalf("%s: answer is not JSON: %v: %s", op, err, r.Body)
	}
	if err := sch.Validate(body); err != nil {
		ck.t.Errorf("%s: %d answer does not match openapi.json: %v\n%s", op, r.StatusCode, err, r.Body)
	}
	ck.covered[op] = true
}

// TestEveryJSONOperationMatchesOpenAPI calls every operation of
// openapi.json that answers JSON, with valid tokens and minimal valid
// inputs, against the real programs, and validates each answer with closed
// schemas. An operation the document declares and this test does not call
// fails it: a new route cannot go unchecked.
func TestEveryJSONOperationMatchesOpenAPI(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	srcBucket := strings.ReplaceAll(testbench.UniqueName("oafiles"), "_", "-")
	src, err := store.OpenOrCreateBucket(t.Context(), store.MinIOConfig{Endpoint: env.MinIOEndpoint, AccessKey: env.MinIOUser,
		SecretKey: env.MinIOPassword, Bucket: srcBucket})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Put(t.Context(), store.BucketObject{Key: "a.txt", Size: 1, ContentType: "text/plain"}, strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	c := newClusterOn(t, env, "TASK_MAX_RETRY=0")
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (v int)`, `INSERT INTO t SELECT generate_series(1, 10)`)
	c.progs.Env = append(c.progs.Env, `BACKUP_TARGETS=[{"name":"main","database":"`+c.source+`","schedule":"@every 1s","retention":{"keep_last":2},"rpo":"1h","stores":["minio","local"],"pitr":true,"base_backup_schedule":"@yearly"}]`)
	// BACKUP_ENABLED, so that the targets answer their schedules too.
	c.startAPI("BACKUP_ENABLED=true")

	code, _, doc := c.raw(http.MethodGet, "/api/openapi.json", "", nil, nil) // the typed client has no call for it
	ck := newOpenAPIChecker(t, doc)
	ck.check("GET /api/openapi.json", &client.Response{StatusCode: code, Body: doc})
	ctx, admin, viewer := t.Context(), c.admin(), c.viewer()
	var r client.Response
	call := func(op string, _ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		ck.check(op, &r)
	}
	var started []string
	enqueueOnly := func(op string, a *client.TaskAccepted) string {
		t.Helper()
		call(op, a, nil)
		return a.TaskID
	}
	enqueue := func(op string, a *client.TaskAccepted, err error) string {
		t.Helper()
		call(op, a, err)
		started = append(started, a.TaskID)
		return a.TaskID
	}

	// Before a worker runs: empty lists, and a task still queued to cancel.
	h, err := viewer.Healthz(ctx, client.WithResponse(&r))
	call("GET /healthz", h, err)
	h, err = viewer.Readyz(ctx, client.WithResponse(&r))
	call("GET /readyz", h, err)
	w, err := viewer.WhoAmI(ctx, client.WithResponse(&r))
	call("GET /api/whoami", w, err)
	bl, err := viewer.ListBackups(ctx, client.ListBackupsOptions{}, client.WithResponse(&r))
	call("GET /api/admin/backup/list", bl, err)
	queued := enqueue("POST /api/admin/backup/create", must(admin.CreateBackup(ctx, client.CreateBackupRequest{BackupName: "oa-cancelled"}, client.WithResponse(&r)))(t), nil)
	a, err := admin.CancelTask(ctx, queued, client.WithResponse(&r))
	call("POST /api/admin/tasks/{id}/cancel", a, err)
	// A base backup of main's server, cancelled before a worker runs it
	// (the bench's server is not set up for pg_basebackup): its answer
	// and payload are what is checked here.
	base := enqueueOnly("POST /api/admin/targets/{name}/basebackup", must(admin.BaseBackupTarget(ctx, "main", client.WithResponse(&r)))(t))
	a, err = admin.CancelTask(ctx, base, client.WithResponse(&r))
	call("POST /api/admin/tasks/{id}/cancel", a, err)
	bt, err := admin.Task(ctx, base, client.WithResponse(&r))
	call("GET /api/admin/tasks/{id}", bt, err)
	if bt.Type != "backup:base" || !strings.Contains(string(bt.Payload), `"target":"main"`) {
		t.Errorf("base backup task %+v: want backup:base with its payload, so that its schema was checked", bt)
	}

	c.start("worker", "worker")
	// The scheduler makes the scheduled backups a prune plan decides on;
	// it runs until there is one.
	sched := c.start("scheduler", "scheduler", "BACKUP_ENABLED=true")
	wait := func(id string) { t.Helper(); c.waitTask(id, time.Minute) }
	wait(enqueue("POST /api/admin/backup/create", must(admin.CreateBackup(ctx, client.CreateBackupRequest{BackupName: "oa-1", Target: "main"}, client.WithResponse(&r)))(t), nil))
	bl, err = viewer.ListBackups(ctx, client.ListBackupsOptions{Limit: 10}, client.WithResponse(&r))
	call("GET /api/admin/backup/list", bl, err)
	wait(enqueue("POST /api/admin/backup/{name}/verify", must(admin.VerifyBackup(ctx, "oa-1", client.VerifyBackupRequest{}, client.WithResponse(&r)))(t), nil))
	restored := c.source + "_oa"
	c.env.DropDBOnCleanup(t, restored)
	wait(enqueue("POST /api/admin/backup/restore", must(admin.RestoreBackup(ctx, client.RestoreBackupRequest{BackupName: "oa-1", TargetDatabase: restored}, client.WithResponse(&r)))(t), nil))
	wait(enqueue("POST /api/admin/targets/{name}/drill", must(admin.DrillTarget(ctx, "main", client.WithResponse(&r)))(t), nil))
	wait(enqueue("POST /api/admin/targets/{name}/prune", must(admin.PruneTarget(ctx, "main", client.WithResponse(&r)))(t), nil))
	wait(enqueue("POST /api/admin/buckets/backup", must(admin.BackupBucket(ctx, client.BucketBackupRequest{Bucket: srcBucket, BackupName: "oa-files"}, client.WithResponse(&r)))(t), nil))
	dst := strings.ReplaceAll(testbench.UniqueName("oarestored"), "_", "-")
	wait(enqueue("POST /api/admin/buckets/restore", must(admin.RestoreBucket(ctx, client.BucketRestoreRequest{BackupName: "oa-files", TargetBucket: dst}, client.WithResponse(&r)))(t), nil))
	wait(enqueue("POST /api/admin/backup/adopt", must(admin.AdoptBackups(ctx, client.AdoptRequest{DryRun: true}, client.WithResponse(&r)))(t), nil))
	wait(enqueue("DELETE /api/admin/backup/{name}", must(admin.DeleteBackup(ctx, "oa-files", client.DeleteBackupRequest{}, client.WithResponse(&r)))(t), nil))

	// The readers, now that there is something to read: every task's
	// status (as an admin, who sees the most fields), the target with its
	// newest backup and drill, the drill, the prune plan, the trail.
	for _, id := range started {
		st, err := admin.Task(ctx, id, client.WithResponse(&r))
		call("GET /api/admin/tasks/{id}", st, err)
		// A result and a payload to check against their schemas.
		if st.State == client.StateCompleted && (len(st.Result) == 0 || string(st.Result) == "null") || len(st.Payload) == 0 {
			t.Errorf("task %s (%s, %s): result %s, payload %s; want both, so that their schemas were checked", id, st.Type, st.State, st.Result, st.Payload)
		}
	}
	tl, err := viewer.Targets(ctx, client.WithResponse(&r))
	call("GET /api/admin/targets", tl, err)
	if len(tl.Targets) != 1 || tl.Targets[0].NewestBackup == nil || tl.Targets[0].LastDrill == nil || tl.Targets[0].NextBaseBackup == nil {
		t.Errorf("targets %+v: want main with its newest backup, last drill and next base backup, so that their schemas were checked", tl.Targets)
	}
	dl, err := viewer.Drills(ctx, client.DrillsOptions{}, client.WithResponse(&r))
	call("GET /api/admin/drills", dl, err)
	var pp *client.PrunePreview
	waitFor(t, time.Minute, "a scheduled backup in the prune plan", func() bool {
		pp, err = viewer.PrunePreview(ctx, "main", client.WithResponse(&r))
		return err != nil || len(pp.Decisions) > 0
	})
	stop(t, sched, syscall.SIGTERM, 15*time.Second)
	call("GET /api/admin/targets/{name}/prune", pp, err)
	if len(dl.Drills) == 0 || len(pp.Decisions) == 0 {
		t.Errorf("drills %+v, prune decisions %+v: want one of each, so that their schemas were checked", dl, pp.Decisions)
	}
	al, err := admin.Audit(ctx, 100, client.WithResponse(&r))
	call("GET /api/admin/audit", al, err)

	var missed []string
	for op := range ck.declared {
		if !ck.covered[op] {
			missed = append(missed, op)
		}
	}
	slices.Sort(missed)
	if len(missed) > 0 {
		t.Errorf("operations of openapi.json with a JSON answer this test never called: %v", missed)
	}
	t.Logf("%d of %d JSON operations checked", len(ck.covered), len(ck.declared))
}
