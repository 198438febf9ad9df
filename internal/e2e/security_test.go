package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/store"
)

// TestSecurityEndToEnd checks, on real processes, what no unit test can:
// secrets never reach logs or Redis, verify catches a corrupted archive,
// and a second restore into a busy database is refused.
func TestSecurityEndToEnd(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (id int PRIMARY KEY, v text)`, `INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	api := c.startAPI()
	w := c.start("worker", "worker")

	// Strangers and viewers are kept out of admin routes; viewers may read.
	ctx := t.Context()
	if _, err := c.api("").ListBackups(ctx, client.ListBackupsOptions{}); client.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("list without token = %v, want 401", err)
	}
	if _, err := c.viewer().CreateBackup(ctx, client.CreateBackupRequest{}); client.StatusOf(err) != http.StatusForbidden {
		t.Errorf("create with viewer token = %v, want 403", err)
	}
	// asynqmon shows full errors and payloads even read-only: viewers get
	// none of it (asynqmon's own API, not ours: raw requests)...
	for _, r := range []struct{ method, path string }{{http.MethodGet, "/monitoring/api/queues"}, {http.MethodPost, "/monitoring/api/queues/backup:pause"}} {
		if code, _, _ := c.raw(r.method, r.path, viewerToken, nil, nil); code != http.StatusForbidden {
			t.Errorf("viewer %s %s on asynqmon = %d, want 403", r.method, r.path, code)
		}
	}
	// ...and lets admins act.
	if code, _, body := c.raw(http.MethodPost, "/monitoring/api/queues/maintenance:pause", adminToken, nil, nil); code >= 400 {
		t.Errorf("admin pausing a queue through asynqmon = %d %s", code, body)
	}
	if code, _, body := c.raw(http.MethodPost, "/monitoring/api/queues/maintenance:resume", adminToken, nil, nil); code != http.StatusNoContent {
		t.Fatalf("admin resuming a queue through asynqmon = %d %s, want 204", code, body)
	}

	// upload_to_minio and ?from=: the old service's ways of naming stores.
	out := c.rawAccepted(http.MethodPost, "/api/admin/backup/create", map[string]any{"backup_name": "sec", "upload_to_minio": true})
	c.waitTask(out.TaskID, time.Minute)

	// Verify a good archive, then corrupt the MinIO copy and verify again.
	out = c.rawAccepted(http.MethodPost, "/api/admin/backup/sec/verify?from=minio", nil)
	st := c.waitTask(out.TaskID, time.Minute)
	if res := result(t, st); res["verified"] != true {
		t.Fatalf("verify of a good archive: %+v", st)
	}
	corrupt(t, c.minio(), c.listBackups()["sec"].ArchiveKey)
	out = c.rawAccepted(http.MethodPost, "/api/admin/backup/sec/verify?from=minio", nil)
	st = c.waitTask(out.TaskID, time.Minute, "archived")
	if msg := st.Error; msg != "checksum mismatch" || st.Retried != 0 {
		t.Fatalf("verify of a corrupted archive ended with %q after %v retries, want checksum mismatch, not retried", msg, st.Retried)
	}

	// Two restores into one database: the second is refused while the first
	// is queued. The worker is paused (stopped) so the first stays queued.
	stop(t, w, syscall.SIGTERM, 20*time.Second)
	target := "sec_target"
	c.env.DropDBOnCleanup(t, target)
	// download_from_minio false: the old service's way of naming the local store.
	restore := map[string]any{"backup_name": "sec", "download_from_minio": false, "target_database": target}
	first := c.rawAccepted(http.MethodPost, "/api/admin/backup/restore", restore).TaskID
	if code, _, body := c.raw(http.MethodPost, "/api/admin/backup/restore", adminToken, nil, restore); code != http.StatusConflict {
		t.Fatalf("second restore into %s = %d %s, want 409", target, code, body)
	}
	c.start("worker-2", "worker")
	c.waitTask(first, time.Minute)
	restore["clean"] = true
	out = c.rawAccepted(http.MethodPost, "/api/admin/backup/restore", restore)
	c.waitTask(out.TaskID, time.Minute)

	// No secret in any log line or anywhere in Redis.
	secrets := []string{c.env.PGPassword, c.env.MinIOPassword, adminToken, viewerToken}
	stop(t, api, syscall.SIGTERM, 10*time.Second)
	for _, name := range []string{"api", "worker", "worker-2"} {
		b, err := os.ReadFile(filepath.Join(c.dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("a secret appears in the %s log", name)
			}
		}
	}
	assertNoSecretInRedis(t, c.env.RedisAddr, c.redisDB, secrets...)
}

func corrupt(t *testing.T, s store.Store, key string) {
	t.Helper()
	ctx := context.Background()
	rc, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 0, 1<<20)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		data = append(data, buf[:n]...)
		if err != nil {
			break
		}
	}
	rc.Close()
	data[len(data)/2] ^= 0x55
	if err := s.Put(ctx, key, strings.NewReader(string(data)), nil); err != nil {
		t.Fatal(err)
	}
}

// TestAPIRefusesToStartWithoutAdminToken runs the api binary with no token.
func TestAPIRefusesToStartWithoutAdminToken(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	cmd := c.progs.Command(harness.API, nil, "API_ADDR=127.0.0.1:0")
	cmd.Env = harness.Without(cmd.Env, harness.Names("API_ADMIN_TOKENS"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "API_ADMIN_TOKENS") {
		t.Fatalf("api without an admin token: err %v, output %q; want a refusal naming API_ADMIN_TOKENS", err, out)
	}
	// With auth explicitly disabled it starts, and warns.
	p := c.startAPI("API_ADMIN_TOKENS=", "API_AUTH_DISABLED=true")
	if _, err := c.api("").ListBackups(t.Context(), client.ListBackupsOptions{}); err != nil {
		t.Errorf("list with auth disabled = %v, want 200", err)
	}
	if !strings.Contains(logText(t, p), "API_AUTH_DISABLED=true") {
		t.Error("no warning logged when auth is disabled")
	}
}
