package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/testbench"
)

// slowEnv makes pg_dump compress hard, so a backup of the slow fixture
// runs for several seconds: long enough to strike in the middle.
var slowEnv = []string{"PG_DUMP_COMPRESS=9"}

// startSlowBackup creates the slow fixture, enqueues its backup and waits
// until the archive is streaming to the stores.
func startSlowBackup(t *testing.T, c *cluster, name string) string {
	t.Helper()
	c.env.CreateSlowFixture(t, c.source)
	// upload_to_minio: the old service's flag, to both stores.
	id := c.rawAccepted(http.MethodPost, "/api/admin/backup/create",
		map[string]any{"backup_name": name, "upload_to_minio": true}).TaskID
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		st, err := c.viewer().Task(t.Context(), id)
		if err == nil && st.State == client.StateActive && st.Progress != nil && st.Progress.Phase == "uploading" {
			return id
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("backup %s never started uploading", name)
	return ""
}

// assertNotListed fails if the backup is listed or any of its objects,
// partial or not, is left in either store.
func assertNothingStored(t *testing.T, c *cluster, name string) {
	t.Helper()
	if _, ok := c.listBackups()[name]; ok {
		t.Fatalf("%s is listed although it never completed", name)
	}
	ctx := context.Background()
	if objs, err := c.minio().List(ctx, "postgres/"+name); err != nil || len(objs) != 0 {
		t.Fatalf("minio holds %v (err %v) for an unfinished backup", objs, err)
	}
	if left, err := c.minio().IncompleteUploads(ctx, ""); err != nil || len(left) != 0 {
		t.Fatalf("incomplete multipart uploads left: %v (err %v)", left, err)
	}
	if objs, err := c.local().List(ctx, "postgres/"+name); err != nil || len(objs) != 0 {
		t.Fatalf("local store holds %v (err %v) for an unfinished backup", objs, err)
	}
}

// restoreAndCompare restores a backup into a new database and compares it
// with the cluster's source.
func restoreAndCompare(t *testing.T, c *cluster, name string) {
	t.Helper()
	target := testbench.UniqueName("fault_restored")
	c.env.DropDBOnCleanup(t, target)
	out := c.rawAccepted(http.MethodPost, "/api/admin/backup/restore",
		map[string]any{"backup_name": name, "download_from_minio": true, "target_database": target})
	c.waitTask(out.TaskID, 3*time.Minute)
	if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, target), c.env.Fingerprint(t, c.source)); diff != "" {
		t.Fatalf("restored %s differs from the source:\n%s", name, diff)
	}
}

// Fault 1: a worker SIGKILLed mid-backup. Its pg_dump dies with it, the
// other worker picks the task up once the lease expires, the backup
// completes and restores correctly, and nothing partial is ever listed.
func TestFaultWorkerKilledMidBackup(t *testing.T) {
	t.Parallel()
	c := newCluster(t, slowEnv...)
	c.startAPI()
	wa := c.start("worker-a", "worker")
	id := startSlowBackup(t, c, "killed")
	dumps := waitChildren(t, wa.Pid(), "pg_dump", 10*time.Second)
	// While pg_dump runs, no password is on any command line.
	assertNoSecretInCmdlines(t, c.env.PGPassword, c.env.MinIOPassword, adminToken)

	wb := c.start("worker-b", "worker")
	if err := wa.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, dumps, 5*time.Second)

	// Nothing partial is ever listed. The manifest is published a moment
	// before asynq marks the task completed, so a listing in that moment
	// may show the backup while the task is still active: then what it
	// showed must be exactly the finished backup (checked below).
	deadline := time.Now().Add(3 * time.Minute)
	st := &client.Task{}
	var early *client.Backup
	for time.Now().Before(deadline) {
		b, listed := c.listBackups()["killed"]
		st = must(c.viewer().Task(t.Context(), id))(t)
		if st.State == client.StateCompleted {
			break
		}
		if listed && early == nil {
			early = &b
		}
		if st.State == client.StateArchived {
			t.Fatalf("task archived: %v", st.Error)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st.State != client.StateCompleted {
		t.Fatalf("task not completed after the worker was killed: %+v", st)
	}
	if res := result(t, st); early != nil && (early.SHA256 != res["sha256"] || float64(early.SizeBytes) != res["size_bytes"]) {
		t.Fatalf("listed while its task was running as %s (%d bytes), but the finished backup is %v (%v bytes)",
			early.SHA256, early.SizeBytes, res["sha256"], res["size_bytes"])
	}
	// The worker's host is for admins only.
	if w := must(c.admin().Task(t.Context(), id))(t).Worker; !strings.HasSuffix(w, ":"+strconv.Itoa(wb.Pid())) {
		t.Errorf("completed by %s, want worker-b (pid %d)", w, wb.Pid())
	}
	if left, _ := c.minio().IncompleteUploads(context.Background(), ""); len(left) != 0 {
		t.Errorf("incomplete multipart uploads left after recovery: %v", left)
	}
	restoreAndCompare(t, c, "killed")
}

// Fault 2: MinIO stops during an upload. The task fails saying the store is
// unreachable, is retried, and succeeds once MinIO is back; no half archive
// is ever listed.
func TestFaultMinIOStoppedDuringUpload(t *testing.T) {
	t.Parallel()
	priv := testbench.Require(t).StartPrivate(t)
	c := newClusterOn(t, priv, append(slowEnv, "TASK_RETRY_DELAY=3s", "TASK_MAX_RETRY=8")...)
	c.startAPI()
	c.start("worker", "worker")
	id := startSlowBackup(t, c, "minio-outage")
	priv.StopService(t, testbench.MinIO)

	st := c.waitTask(id, 3*time.Minute, "retry")
	if msg := st.Error; msg != "store unavailable" {
		t.Fatalf("error while MinIO is down = %q, want it classified as store unavailable", msg)
	}
	// While MinIO is down the local listing works and shows nothing half done.
	// (include_minio=false: the old service's query parameter.)
	code, _, body := c.raw(http.MethodGet, "/api/admin/backup/list?include_minio=false", adminToken, nil, nil)
	var local client.BackupList
	if code != http.StatusOK || json.Unmarshal(body, &local) != nil || local.Count != 0 {
		t.Fatalf("local listing during the outage = %d %s, want 200 and empty", code, body)
	}
	if _, err := c.viewer().ListBackups(t.Context(), client.ListBackupsOptions{}); client.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("listing MinIO while it is down: %v, want 503", err)
	}

	priv.StartService(t, testbench.MinIO)
	st = c.waitTask(id, 3*time.Minute)
	if st.Retried < 1 {
		t.Errorf("task completed with retried=%v, want at least one retry", st.Retried)
	}
	if b, ok := c.listBackups()["minio-outage"]; !ok || len(b.Locations) != 2 {
		t.Fatalf("after recovery the backup is %+v, want listed in both stores", b)
	}
	if left, _ := c.minio().IncompleteUploads(context.Background(), ""); len(left) != 0 {
		t.Errorf("incomplete multipart uploads left: %v", left)
	}
	restoreAndCompare(t, c, "minio-outage")
}

// Fault 3: PostgreSQL unreachable. The task status says so; retries are
// bounded and the task ends archived with that error.
func TestFaultPostgresUnreachable(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "TASK_MAX_RETRY=2", "TASK_RETRY_DELAY=300ms")
	c.startAPI()
	// Port 1 on loopback refuses connections at once.
	c.start("worker", "worker", "POSTGRES_PORT=1")
	out := c.create(client.CreateBackupRequest{BackupName: "no-pg"})
	st := c.waitTask(out.TaskID, time.Minute, "archived")
	// Viewers see the class only; admins also see the detail.
	full := must(c.admin().Task(t.Context(), st.TaskID))(t)
	if msg := st.Error; msg != "postgres unreachable" || st.ErrorDetail != "" {
		t.Fatalf("viewer sees error %q detail %q, want only \"postgres unreachable\"", msg, st.ErrorDetail)
	}
	if d := full.ErrorDetail; !strings.Contains(d, "127.0.0.1:1") {
		t.Fatalf("admin sees detail %q, want the address 127.0.0.1:1", d)
	}
	if st.Retried != 2 || st.MaxRetry != 2 {
		t.Fatalf("retried %v of %v, want 2 of 2", st.Retried, st.MaxRetry)
	}
	assertNothingStored(t, c, "no-pg")
}

// Fault 4: Redis restarts while the API and a worker run. The API answers
// 503 while Redis is down and recovers without a restart; the worker
// reconnects and finishes the tasks that were queued.
func TestFaultRedisRestart(t *testing.T) {
	t.Parallel()
	priv := testbench.Require(t).StartPrivate(t, "TESTBENCH_REDIS_PERSIST=1")
	c := newClusterOn(t, priv, slowEnv...)
	c.startAPI()
	c.start("worker", "worker")
	slow := startSlowBackup(t, c, "during-outage")
	queued := c.create(client.CreateBackupRequest{BackupName: "queued-before-outage", Format: "plain"}).TaskID

	priv.StopService(t, testbench.Redis)
	if _, err := c.api("").Readyz(t.Context()); client.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("readyz with Redis down = %v, want 503", err)
	}
	if _, err := c.admin().CreateBackup(t.Context(), client.CreateBackupRequest{BackupName: "refused"}); client.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("create with Redis down = %v, want 503", err)
	}
	time.Sleep(2 * time.Second)
	priv.StartService(t, testbench.Redis)

	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.api("").Readyz(t.Context()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("API did not become ready after Redis came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.waitTask(slow, 3*time.Minute)
	c.waitTask(queued, 3*time.Minute)
	out := c.create(client.CreateBackupRequest{BackupName: "after-outage", Format: "tar"})
	c.waitTask(out.TaskID, time.Minute)
	list := c.listBackups()
	for _, n := range []string{"during-outage", "queued-before-outage", "after-outage"} {
		if _, ok := list[n]; !ok {
			t.Errorf("%s not listed after the Redis restart", n)
		}
	}
}

// Fault 5: a running backup cancelled through the API. Its pg_dump stops,
// the partial upload is aborted, and the task is not run again.
func TestFaultCancelRunningBackup(t *testing.T) {
	t.Parallel()
	c := newCluster(t, slowEnv...)
	c.startAPI()
	w := c.start("worker", "worker")
	id := startSlowBackup(t, c, "cancelled")
	dumps := waitChildren(t, w.Pid(), "pg_dump", 10*time.Second)

	if _, err := c.viewer().CancelTask(t.Context(), id); client.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("viewer cancel = %v, want 403", err)
	}
	var r client.Response
	out, err := c.admin().CancelTask(t.Context(), id, client.WithResponse(&r))
	if out = c.accepted("cancel", &r, out, err); out.State != client.StateArchived {
		t.Errorf("cancel answered state %v, want archived", out.State)
	}
	waitGone(t, dumps, 5*time.Second)
	st := c.waitTask(id, 30*time.Second, "archived")
	// It stays archived: asynq's automatic retry of cancelled tasks is off.
	time.Sleep(3 * time.Second)
	st = must(c.viewer().Task(t.Context(), id))(t)
	if st.State != client.StateArchived {
		t.Fatalf("cancelled task is %v 3 s later, want still archived", st.State)
	}
	if n := strings.Count(logText(t, w), `"msg":"backup complete"`); n != 0 {
		t.Fatalf("cancelled backup completed %d times", n)
	}
	assertNothingStored(t, c, "cancelled")
	if _, err := c.admin().CancelTask(t.Context(), id); client.StatusOf(err) != http.StatusConflict {
		t.Errorf("second cancel = %v, want 409", err)
	}
	// The name is free again.
	out = c.create(client.CreateBackupRequest{BackupName: "cancelled", Format: "plain"})
	c.waitTask(out.TaskID, 2*time.Minute)
}

// Fault 6: SIGTERM to a worker while it backs up. With a short grace period
// the task is handed back whole and another worker completes it; with a
// long one the backup finishes before the worker exits. Never half
// published.
func TestFaultWorkerSIGTERM(t *testing.T) {
	t.Parallel()
	c := newCluster(t, slowEnv...)
	c.startAPI()

	// Short grace: handed back.
	wa := c.start("worker-a", "worker", "WORKER_SHUTDOWN_TIMEOUT=1s")
	id := startSlowBackup(t, c, "handed-back")
	dumps := waitChildren(t, wa.Pid(), "pg_dump", 10*time.Second)
	stop(t, wa, syscall.SIGTERM, 20*time.Second)
	waitGone(t, dumps, 5*time.Second)
	st := must(c.viewer().Task(t.Context(), id))(t)
	if s := st.State; s != client.StatePending && s != client.StateRetry && s != client.StateActive {
		t.Fatalf("after SIGTERM the task is %v, want it back in the queue", s)
	}
	assertNothingStored(t, c, "handed-back")
	wb := c.start("worker-b", "worker", "WORKER_SHUTDOWN_TIMEOUT=2m")
	c.waitTask(id, 3*time.Minute)
	// The worker's host is for admins only.
	if w := must(c.admin().Task(t.Context(), id))(t).Worker; !strings.HasSuffix(w, ":"+strconv.Itoa(wb.Pid())) {
		t.Errorf("handed-back task completed by %s, want worker-b", w)
	}

	// Long grace: finishes in place.
	id2 := c.rawAccepted(http.MethodPost, "/api/admin/backup/create",
		map[string]any{"backup_name": "finished-in-grace", "upload_to_minio": true}).TaskID
	waitChildren(t, wb.Pid(), "pg_dump", 30*time.Second)
	stop(t, wb, syscall.SIGTERM, 2*time.Minute)
	st = must(c.viewer().Task(t.Context(), id2))(t)
	if st.State != client.StateCompleted {
		t.Fatalf("with a long grace period the task is %v after the worker exited, want completed", st.State)
	}
	c.start("worker-c", "worker")
	restoreAndCompare(t, c, "handed-back")
}
