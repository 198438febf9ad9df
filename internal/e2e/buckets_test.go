package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/store"
)

func TestBucketBackupThroughTheAPI(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.startAPI()
	c.start("worker", "worker")
	ctx := context.Background()
	open := func(name string) *store.Bucket {
		b, err := store.OpenOrCreateBucket(ctx, store.MinIOConfig{Endpoint: c.env.MinIOEndpoint, AccessKey: c.env.MinIOUser,
			SecretKey: c.env.MinIOPassword, Bucket: name})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	srcName := strings.ReplaceAll(testbench.UniqueName("files"), "_", "-")
	src := open(srcName)
	want := map[string]string{}
	for i := range 20 {
		key, body := fmt.Sprintf("in/%02d.txt", i), fmt.Sprintf("file %d", i)
		want[key] = body
		if err := src.Put(ctx, store.BucketObject{Key: key, Size: int64(len(body)), ContentType: "text/plain",
			UserMetadata: map[string]string{"n": fmt.Sprint(i)}}, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	admin := c.admin()
	if _, err := admin.BackupBucket(ctx, client.BucketBackupRequest{Bucket: c.bucket}); client.StatusOf(err) != http.StatusForbidden {
		t.Errorf("backup of the backup bucket itself = %v, want 403", err)
	}
	if _, err := admin.BackupBucket(ctx, client.BucketBackupRequest{Bucket: "no-such-bucket-here"}); client.StatusOf(err) != http.StatusNotFound {
		t.Errorf("backup of a missing bucket = %v, want 404", err)
	}
	var r client.Response
	out, err := admin.BackupBucket(ctx, client.BucketBackupRequest{Bucket: srcName, BackupName: "files-1"}, client.WithResponse(&r))
	c.waitTask(c.accepted("bucket backup", &r, out, err).TaskID, time.Minute)
	entry := c.listBackups()["files-1"]
	if entry.Kind != "bucket" || entry.Objects != 20 {
		t.Fatalf("listed %+v, want a bucket backup of 20 objects", entry)
	}
	if _, err := admin.RestoreBackup(ctx, client.RestoreBackupRequest{BackupName: "files-1", TargetDatabase: "x"}); client.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("database restore of a bucket backup = %v, want 400", err)
	}
	dstName := strings.ReplaceAll(testbench.UniqueName("restored"), "_", "-")
	out, err = admin.RestoreBucket(ctx, client.BucketRestoreRequest{BackupName: "files-1", TargetBucket: dstName}, client.WithResponse(&r))
	st := c.waitTask(c.accepted("bucket restore", &r, out, err).TaskID, time.Minute)
	if res := result(t, st); res["restored"] != float64(20) {
		t.Fatalf("restore result %v, want 20 restored", res)
	}
	got := map[string]string{}
	err = open(dstName).Walk(ctx, "", func(o store.BucketObject, r io.Reader) error {
		var b bytes.Buffer
		_, err := b.ReadFrom(r)
		got[o.Key] = b.String()
		if o.ContentType != "text/plain" || o.UserMetadata["n"] == "" {
			t.Errorf("%s restored with content type %q metadata %v", o.Key, o.ContentType, o.UserMetadata)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s restored as %q, want %q", k, got[k], v)
		}
	}
}

// TestBucketTarget schedules a bucket like a database: its scheduled
// backups are named after their slot and pruned by its retention.
func TestBucketTarget(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	srcName := strings.ReplaceAll(testbench.UniqueName("tgtfiles"), "_", "-")
	src, err := store.OpenOrCreateBucket(context.Background(), store.MinIOConfig{Endpoint: env.MinIOEndpoint, AccessKey: env.MinIOUser,
		SecretKey: env.MinIOPassword, Bucket: srcName})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Put(context.Background(), store.BucketObject{Key: "a.txt", Size: 1}, strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "BACKUP_ENABLED=true",
		fmt.Sprintf(`BACKUP_TARGETS=[{"name":"files","kind":"bucket","bucket":%q,"schedule":"@every 2s","keep_last":1,"rpo":"1h"}]`, srcName))
	c.startAPI()
	c.start("worker", "worker")
	sched := c.start("scheduler", "scheduler")
	// Three scheduled backups at least, so that retention had work to do.
	waitFor(t, time.Minute, "three scheduled bucket backups", func() bool {
		return metric(c.scrape(), "pgbackup_backups_total", map[string]string{"target": "files", "outcome": "success"}) >= 3
	})
	tl := must(c.viewer().Targets(t.Context()))(t)
	if ts := tl.Targets; len(ts) != 1 || ts[0].Kind != "bucket" {
		t.Fatalf("targets = %+v, want the bucket target", tl)
	}
	stop(t, sched, syscall.SIGTERM, 20*time.Second)
	waitFor(t, time.Minute, "the queue to drain", c.queueIdle)
	list := c.listBackups()
	got := scheduledOf(list, "files")
	if len(got) != 1 || list[got[0]].Kind != "bucket" {
		t.Fatalf("scheduled bucket backups %v, want exactly one (keep_last 1)", got)
	}
}
