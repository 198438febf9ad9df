package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// TestBaseBackupTask: a backup:base task for a pitr target, run by the
// real worker program, copies the target's server with pg_basebackup into
// the stores (archive, PostgreSQL's backup_manifest, manifest), and its
// result is the manifest with the WAL positions; a restore task for it is
// refused for good by the worker.
func TestBaseBackupTask(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	p.startAPI()
	p.start("worker", "worker")
	p.writeAndSwitch(t, 20000)

	q := asynq.NewClient(asynq.RedisClientOpt{Addr: p.env.RedisAddr, DB: p.redisDB})
	defer q.Close()
	o := tasks.Options{MaxRetry: 1, Retention: time.Hour, BackupTimeout: 5 * time.Minute, RestoreTimeout: 5 * time.Minute}
	enqueue := func(pl tasks.Payload) string {
		task, err := tasks.NewTask(pl, o)
		if err != nil {
			t.Fatal(err)
		}
		info, err := q.EnqueueContext(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}

	st := p.waitTask(enqueue(tasks.BaseBackupPayload{Target: walTarget}), 2*time.Minute)
	var m engine.Manifest
	if err := json.Unmarshal(st.Result, &m); err != nil {
		t.Fatalf("result %s: %v", st.Result, err)
	}
	name := m.Name.String()
	if m.Content != engine.ContentBase || !strings.HasPrefix(name, walTarget+"_base_") || m.Target != walTarget || m.Base == nil ||
		m.Base.WALArchive != walTarget || m.Base.Timeline != 1 || m.Base.StartLSN == "" || m.Base.StopLSN == "" ||
		m.Base.UnpackedBytes <= 0 || m.Base.BackupManifest == nil || len(m.ChunkSHA256) != 0 {
		t.Fatalf("result = %s; want a base backup summary of %s with WAL positions, unpacked size and backup_manifest", st.Result, walTarget)
	}
	objs, err := p.minio().List(t.Context(), engine.Prefix+name)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{m.ArchiveKey: false, m.Base.BackupManifest.ArchiveKey: false, engine.ManifestKey(m.Name): false}
	for _, o := range objs {
		if _, ok := want[o.Key]; ok {
			want[o.Key] = true
		}
	}
	for k, found := range want {
		if !found {
			t.Errorf("MinIO lacks %s (has %d objects under the name)", k, len(objs))
		}
	}
	if b, ok := p.listBackups()[name]; !ok || b.Kind != engine.ContentBase {
		t.Errorf("the API lists %s as %+v (found %v); want kind %s", name, b, ok, engine.ContentBase)
	}

	// Someone who can write Redis queues the restore the API should not.
	id := enqueue(tasks.RestorePayload{BackupName: name, TargetDatabase: "from_base"})
	p.waitTask(id, time.Minute, "archived")
	rst, err := p.admin().Task(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if rst.Error != "invalid request" || rst.Retried != 0 || !strings.Contains(rst.ErrorDetail, "is a base backup: it is restored by point-in-time recovery") {
		t.Errorf("restore of a base backup ended %q (%q) after %d retries; want invalid request at once, restored by point-in-time recovery",
			rst.Error, rst.ErrorDetail, rst.Retried)
	}
}
