package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// call makes an HTTP request with a token and decodes a JSON answer.
func (c *cluster) call(method, path, token string, body any) (int, map[string]any) {
	c.t.Helper()
	code, _, out := c.send(method, path, token, nil, body)
	return code, out
}

// send is call with extra request headers, returning the response's too.
func (c *cluster) send(method, path, token string, headers map[string]string, body any) (int, http.Header, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.apiURL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, resp.Header, out
}

// mustCall is call expecting one status.
func (c *cluster) mustCall(method, path string, body any, want int) map[string]any {
	c.t.Helper()
	code, out := c.call(method, path, adminToken, body)
	if code != want {
		c.t.Fatalf("%s %s: status %d, want %d; body %v", method, path, code, want, out)
	}
	return out
}

// waitTask polls the task until it reaches a final state (or want) and
// returns its status document.
func (c *cluster) waitTask(id string, timeout time.Duration, want ...string) map[string]any {
	c.t.Helper()
	if len(want) == 0 {
		want = []string{"completed"}
	}
	deadline := time.Now().Add(timeout)
	var last map[string]any
	for time.Now().Before(deadline) {
		code, out := c.call(http.MethodGet, "/api/admin/tasks/"+id, viewerToken, nil)
		if code == http.StatusOK {
			last = out
			state, _ := out["state"].(string)
			for _, w := range want {
				if state == w {
					return out
				}
			}
			if state == "archived" || state == "completed" {
				c.t.Fatalf("task %s ended %s, want %v: %v", id, state, want, out)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("task %s not %v within %s; last status %v", id, want, timeout, last)
	return nil
}

// listBackups returns the API's listing keyed by backup name.
func (c *cluster) listBackups() map[string]map[string]any {
	c.t.Helper()
	out := c.mustCall(http.MethodGet, "/api/admin/backup/list", nil, http.StatusOK)
	res := map[string]map[string]any{}
	list, _ := out["backups"].([]any)
	for _, b := range list {
		m := b.(map[string]any)
		res[m["backup_name"].(string)] = m
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
