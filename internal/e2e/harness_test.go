package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/store"
)

const (
	adminToken  = "e2e-admin-token-0123456789"
	viewerToken = "e2e-viewer-token-0123456789"
)

var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if _, ok := testbench.Lookup(); !ok && os.Getenv("PGBACKUP_TEST_REQUIRED") == "" {
			return m.Run() // every test skips through testbench.Require
		}
		dir, err := os.MkdirTemp("", "pgbackup-e2e-bin-*")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := harness.Build(context.Background(), dir, harness.BuildOptions{}); err != nil {
			fmt.Fprintln(os.Stderr, "build binaries:", err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// cluster is one deployment of the service: its own Redis database number,
// backup directory, MinIO bucket and source database, so clusters of
// parallel tests never see each other's tasks or archives. Its programs
// run in progs, whose Env is the cluster's settings.
type cluster struct {
	t       *testing.T
	env     testbench.Env
	dir     string
	source  string
	bucket  string
	redisDB int
	progs   *harness.Group
	apiURL  string
}

var redisDBs = struct {
	sync.Mutex
	next int
}{next: 16} // 0 to 15 are the package tests'; the bench has 128

func newCluster(t *testing.T, extraEnv ...string) *cluster {
	t.Helper()
	return newClusterOn(t, testbench.Require(t), extraEnv...)
}

// newClusterOn is newCluster on a given bench, such as a private one.
func newClusterOn(t *testing.T, env testbench.Env, extraEnv ...string) *cluster {
	t.Helper()
	redisDBs.Lock()
	db := redisDBs.next
	redisDBs.next++
	redisDBs.Unlock()
	if db > 127 {
		t.Fatal("out of Redis databases for e2e clusters")
	}
	c := &cluster{t: t, env: env, dir: t.TempDir(), redisDB: db,
		source: testbench.UniqueName("e2e_src"),
		bucket: strings.ReplaceAll(testbench.UniqueName("e2e"), "_", "-")}
	base := append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, harness.BenchEnv(env.Env)...)
	c.progs = &harness.Group{Bin: binDir, Logs: c.dir, OwnProcessGroup: true, StopTimeout: 15 * time.Second,
		Env: append(append(base,
			"POSTGRES_DB="+c.source,
			"BACKUP_DIR="+filepath.Join(c.dir, "backups"), "WORK_DIR="+c.dir,
			"MINIO_BUCKET="+c.bucket, "MINIO_PART_SIZE_MB=5", "MINIO_UPLOAD_THREADS=2",
			fmt.Sprintf("REDIS_DB=%d", db),
			"API_ADMIN_TOKENS="+adminToken, "API_VIEWER_TOKENS="+viewerToken,
			"TASK_RETRY_DELAY=1s", "WORKER_CONCURRENCY=1", "BACKUP_ENABLED=false",
			"LOG_LEVEL=info",
		), extraEnv...)}
	c.progs.StopOnCleanup(t)
	return c
}

// start runs program as name with the cluster's environment plus extra,
// failing the test if it cannot start.
func (c *cluster) start(name, program string, extra ...string) *harness.Proc {
	c.t.Helper()
	p, err := c.progs.Start(name, program, extra...)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// startAPI starts the api on a free port and waits until it is ready; the
// cluster's calls go to the latest one.
func (c *cluster) startAPI(extra ...string) *harness.Proc {
	c.t.Helper()
	name := "api"
	if c.apiURL != "" {
		// A second instance: its own log.
		name = fmt.Sprintf("api-%d", len(c.progs.Procs()))
	}
	p, url, err := c.progs.StartAPI(c.t.Context(), name, "", extra...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.apiURL = url
	return p
}

// stop stops p with sig within timeout, failing the test if it had to be
// killed.
func stop(t *testing.T, p *harness.Proc, sig syscall.Signal, timeout time.Duration) {
	t.Helper()
	if err := p.Stop(sig, timeout); err != nil {
		t.Error(err)
	}
}

// logText is p's log, failing the test if it cannot be read.
func logText(t *testing.T, p *harness.Proc) string {
	t.Helper()
	s, err := p.Output()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// api is a typed client of the cluster's latest API with token (none
// when empty). Every request of the tests goes through it, except those
// raw sends.
func (c *cluster) api(token string) *client.Client { return c.apiAt(c.apiURL, token) }

// apiAt is api for one of several API instances.
func (c *cluster) apiAt(url, token string) *client.Client {
	c.t.Helper()
	cl, err := client.New(url, token)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func (c *cluster) admin() *client.Client  { return c.api(adminToken) }
func (c *cluster) viewer() *client.Client { return c.api(viewerToken) }

// must takes a call's answer and error, and returns a function that
// fails the test if the call failed and returns the answer otherwise:
// must(c.admin().Targets(ctx))(t). (Go passes a call's results on only as
// all of a function's arguments, so t comes second.)
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// accepted fails the test unless an enqueueing call, made with
// client.WithResponse(r), was answered 202 Accepted; it returns the answer.
func (c *cluster) accepted(what string, r *client.Response, a *client.TaskAccepted, err error) *client.TaskAccepted {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
	if r.StatusCode != http.StatusAccepted {
		c.t.Fatalf("%s: status %d, want 202; body %s", what, r.StatusCode, r.Body)
	}
	return a
}

// create enqueues a backup as admin; it must be accepted.
func (c *cluster) create(req client.CreateBackupRequest) *client.TaskAccepted {
	c.t.Helper()
	var r client.Response
	a, err := c.admin().CreateBackup(c.t.Context(), req, client.WithResponse(&r))
	return c.accepted("create "+req.BackupName, &r, a, err)
}

// restore enqueues a restore as admin; it must be accepted.
func (c *cluster) restore(req client.RestoreBackupRequest) *client.TaskAccepted {
	c.t.Helper()
	var r client.Response
	a, err := c.admin().RestoreBackup(c.t.Context(), req, client.WithResponse(&r))
	return c.accepted("restore "+req.BackupName, &r, a, err)
}

// remove enqueues the deletion of a backup from every store as admin; it
// must be accepted.
func (c *cluster) remove(name string) *client.TaskAccepted {
	c.t.Helper()
	var r client.Response
	a, err := c.admin().DeleteBackup(c.t.Context(), name, client.DeleteBackupRequest{}, client.WithResponse(&r))
	return c.accepted("delete "+name, &r, a, err)
}

// raw sends a request the typed client must not be able to send, and only
// those: old-style compatibility fields and query parameters
// (upload_to_minio, download_from_minio, include_minio, ?from=), a method
// a route refuses, a cross-origin Origin, asynqmon's own API under
// /monitoring/ (with Basic auth too). token goes as a bearer token when
// not empty; headers are set after it (an Authorization there wins). A
// body that is not nil goes as JSON: a string as it is, anything else
// marshalled. It returns the answer as received.
func (c *cluster) raw(method, path, token string, headers map[string]string, body any) (int, http.Header, []byte) {
	c.t.Helper()
	text, ok := body.(string)
	if !ok && body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		text = string(b)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.apiURL+path, strings.NewReader(text))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v) // last: a header given wins
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, answer
}

// rawAccepted is raw for an old-style request as admin that must enqueue
// a task (202).
func (c *cluster) rawAccepted(method, path string, body any) *client.TaskAccepted {
	c.t.Helper()
	code, _, answer := c.raw(method, path, adminToken, nil, body)
	var a client.TaskAccepted
	if code != http.StatusAccepted || json.Unmarshal(answer, &a) != nil || a.TaskID == "" {
		c.t.Fatalf("%s %s %v: status %d, want 202 with a task; body %s", method, path, body, code, answer)
	}
	return &a
}

// waitTask polls the task as a viewer until it reaches a final state (or
// want) and returns its status. A failed read is read again: some tests
// wait through an outage. (client.WaitTask stops at the first failed read
// and at archived, so it does not fit.)
func (c *cluster) waitTask(id string, timeout time.Duration, want ...string) *client.Task {
	c.t.Helper()
	if len(want) == 0 {
		want = []string{client.StateCompleted}
	}
	deadline := time.Now().Add(timeout)
	var last *client.Task
	for time.Now().Before(deadline) {
		if st, err := c.viewer().Task(c.t.Context(), id); err == nil {
			last = st
			if slices.Contains(want, st.State) {
				return st
			}
			if st.Done() {
				c.t.Fatalf("task %s ended %s, want %v: %+v", id, st.State, want, st)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("task %s not %v within %s; last status %+v", id, want, timeout, last)
	return nil
}

// result is a task's result as generic JSON, for checking the fields a
// test is about.
func result(t *testing.T, st *client.Task) map[string]any {
	t.Helper()
	var res map[string]any
	if err := json.Unmarshal(st.Result, &res); err != nil {
		t.Fatalf("task %s result %s: %v", st.TaskID, st.Result, err)
	}
	return res
}

// listBackups returns the API's listing keyed by backup name.
func (c *cluster) listBackups() map[string]client.Backup {
	c.t.Helper()
	list := must(c.admin().ListBackups(c.t.Context(), client.ListBackupsOptions{}))(c.t)
	res := map[string]client.Backup{}
	for _, b := range list.Backups {
		res[b.BackupName] = b
	}
	return res
}

// minio opens the cluster's bucket directly, to check what the service did.
func (c *cluster) minio() *store.MinIO {
	c.t.Helper()
	s, err := store.NewMinIO(context.Background(), store.MinIOConfig{
		Endpoint: c.env.MinIOEndpoint, AccessKey: c.env.MinIOUser, SecretKey: c.env.MinIOPassword, Bucket: c.bucket,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (c *cluster) local() *store.Local {
	c.t.Helper()
	s, err := store.NewLocal(filepath.Join(c.dir, "backups"))
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}
