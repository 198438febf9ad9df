package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
)

// TestBucketAllowlist: bucket tasks reach only the buckets BUCKET_ALLOWLIST
// names. The API refuses the others with 403 naming the setting; a task
// someone queued in Redis directly is refused by the worker, without
// retry and without creating the bucket. The backups' own bucket is
// refused even when the allowlist names it and the source endpoint is
// the store's spelled another way.
func TestBucketAllowlist(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	prefix := strings.ReplaceAll(testbench.UniqueName("allowed"), "_", "-")
	c := newCluster(t)
	// The store's endpoint, spelled another way: localhost, scheme in
	// capitals, a trailing slash.
	source := "HTTP://" + strings.Replace(strings.TrimPrefix(env.MinIOEndpoint, "http://"), "127.0.0.1", "localhost", 1) + "/"
	c.progs.Env = append(c.progs.Env, "BUCKET_ALLOWLIST="+prefix+"*,"+c.bucket, "SOURCE_MINIO_ENDPOINT="+source,
		"SOURCE_MINIO_ROOT_USER="+env.MinIOUser, "SOURCE_MINIO_ROOT_PASSWORD="+env.MinIOPassword)
	c.startAPI()
	c.start("worker", "worker")
	ctx := context.Background()
	open := func(name string) *store.Bucket {
		b, err := store.OpenOrCreateBucket(ctx, store.MinIOConfig{Endpoint: env.MinIOEndpoint, AccessKey: env.MinIOUser,
			SecretKey: env.MinIOPassword, Bucket: name})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	allowed, other := prefix+"-src", strings.ReplaceAll(testbench.UniqueName("other"), "_", "-")
	if err := open(allowed).Put(ctx, store.BucketObject{Key: "a.txt", Size: 1}, strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	open(other)

	refused := func(path string, body map[string]any, want string) {
		t.Helper()
		code, _, text := c.raw(http.MethodPost, path, adminToken, nil, body)
		if code != http.StatusForbidden || !strings.Contains(string(text), want) {
			t.Errorf("POST %s %v: %d %s, want 403 naming %s", path, body, code, text, want)
		}
	}
	refused("/api/admin/buckets/backup", map[string]any{"bucket": other}, "BUCKET_ALLOWLIST")
	refused("/api/admin/buckets/backup", map[string]any{"bucket": c.bucket}, "holds the backups themselves")

	var r client.Response
	out, err := c.admin().BackupBucket(ctx, client.BucketBackupRequest{Bucket: allowed, BackupName: "files-1"}, client.WithResponse(&r))
	c.waitTask(c.accepted("bucket backup", &r, out, err).TaskID, time.Minute)
	refused("/api/admin/buckets/restore", map[string]any{"backup_name": "files-1", "target_bucket": other}, "BUCKET_ALLOWLIST")
	refused("/api/admin/buckets/restore", map[string]any{"backup_name": "files-1", "target_bucket": c.bucket}, "holds the backups themselves")

	// Someone who can write Redis queues what the API refused.
	never := strings.ReplaceAll(testbench.UniqueName("never"), "_", "-")
	q := asynq.NewClient(asynq.RedisClientOpt{Addr: env.RedisAddr, DB: c.redisDB})
	defer q.Close()
	for _, p := range []tasks.Payload{
		tasks.BucketRestorePayload{BackupName: "files-1", TargetBucket: never},
		tasks.BucketRestorePayload{BackupName: "files-1", TargetBucket: c.bucket, Overwrite: true},
		tasks.BucketBackupPayload{BackupName: "files-2", Bucket: other},
	} {
		task, err := tasks.NewTask(p, tasks.Options{MaxRetry: 3, Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		info, err := q.EnqueueContext(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		st := c.waitTask(info.ID, time.Minute, "archived")
		if st.Error != "bucket not allowed" || st.Retried != 0 {
			t.Errorf("%T %+v queued directly ended %q after %d retries; want bucket not allowed at once", p, p, st.Error, st.Retried)
		}
	}
	if _, err := store.OpenBucket(ctx, store.MinIOConfig{Endpoint: env.MinIOEndpoint, AccessKey: env.MinIOUser,
		SecretKey: env.MinIOPassword, Bucket: never}); err == nil {
		t.Errorf("bucket %s was created by a refused restore", never)
	}
}

// TestAPIStartsWithoutTheWorkersSecrets: the API and the scheduler start
// with an identity file and a target password file they cannot read (so
// they never open them); a worker with the same settings stops at once,
// naming both.
func TestAPIStartsWithoutTheWorkersSecrets(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "absent")
	c := newCluster(t, "ENCRYPTION_IDENTITY_FILE="+missing,
		fmt.Sprintf(`BACKUP_TARGETS=[{"name":"other","host":"127.0.0.1","password_file":%q}]`, missing))
	c.startAPI()
	if _, err := c.viewer().Targets(t.Context()); err != nil {
		t.Fatalf("api without the workers' secrets: %v", err)
	}
	sched := c.start("scheduler", "scheduler")
	waitFor(t, 30*time.Second, "the scheduler to start", func() bool {
		out, _ := sched.Output()
		return strings.Contains(out, "scheduler started")
	})
	b, err := c.progs.Command(harness.Worker, nil).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "ENCRYPTION_IDENTITY_FILE") || !strings.Contains(string(b), "password_file") {
		t.Fatalf("worker with unreadable secrets: err %v, output %s; want a refusal naming ENCRYPTION_IDENTITY_FILE and password_file", err, tail(string(b), 2000))
	}
}
