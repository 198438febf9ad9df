package e2e

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/store"
)

// TestServiceEndToEnd drives the whole service over HTTP: two workers take
// backups in all four formats, a restore reproduces the source exactly, a
// delete removes archive and manifest from both stores.
func TestServiceEndToEnd(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.env.CreateFixture(t, c.source)
	want := c.env.Fingerprint(t, c.source)
	c.startAPI()
	c.start("worker-a", "worker")
	c.start("worker-b", "worker")

	tasks := map[string]string{} // format -> task id
	for _, f := range engine.Formats {
		// upload_to_minio: the old service's flag still works end to end.
		out := c.rawAccepted(http.MethodPost, "/api/admin/backup/create",
			map[string]any{"backup_name": "e2e-" + f.String(), "format": f, "upload_to_minio": true})
		if out.BackupName != "e2e-"+f.String() || out.StatusURL != "/api/admin/tasks/"+out.TaskID {
			t.Fatalf("create response = %+v", out)
		}
		tasks[f.String()] = out.TaskID
	}
	workers := map[string]bool{}
	sizes := map[string]int64{}
	for f, id := range tasks {
		st := c.waitTask(id, 2*time.Minute)
		res := result(t, st)
		if res == nil || res["sha256"] == "" || res["format"] != f {
			t.Fatalf("completed task %s has result %s", id, st.Result)
		}
		if p := st.Progress; p == nil || p.Phase != "done" {
			t.Errorf("task %s progress = %+v, want phase done", id, st.Progress)
		}
		sizes["e2e-"+f] = int64(res["size_bytes"].(float64))
		// The worker's host is for admins only (viewers poll in waitTask).
		workers[must(c.admin().Task(t.Context(), id))(t).Worker] = true
	}
	if len(workers) != 2 {
		t.Errorf("tasks were run by %v, want both workers to have taken some", workers)
	}

	list := c.listBackups()
	for name, size := range sizes {
		b, ok := list[name]
		if !ok {
			t.Fatalf("list lacks %s: %v", name, list)
		}
		locs := b.Locations
		if len(locs) != 2 || locs[0] != "local" || locs[1] != "minio" {
			t.Errorf("%s locations = %v, want [local minio]", name, locs)
		}
		if b.SizeBytes != size || size < 1<<20 {
			t.Errorf("%s size_bytes = %v, want %v (> 1 MiB)", name, b.SizeBytes, size)
		}
	}

	// Restore the directory-format backup from MinIO into a new database.
	target := testbench.UniqueName("e2e_restored")
	c.env.DropDBOnCleanup(t, target)
	out := c.rawAccepted(http.MethodPost, "/api/admin/backup/restore",
		map[string]any{"backup_name": "e2e-directory", "download_from_minio": true, "target_database": target})
	c.waitTask(out.TaskID, 2*time.Minute)
	if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, target), want); diff != "" {
		t.Fatalf("restored database differs from source:\n%s", diff)
	}

	// Delete one backup from both stores. Archives are zstd-compressed in
	// the stream by default.
	tarKey := c.listBackups()["e2e-tar"].ArchiveKey
	if tarKey != "postgres/e2e-tar.tar.zst" {
		t.Fatalf("archive key of e2e-tar = %q, want postgres/e2e-tar.tar.zst", tarKey)
	}
	out = c.remove("e2e-tar")
	st := c.waitTask(out.TaskID, time.Minute)
	if res := result(t, st); !slices.Equal(toStrings(res["deleted_from"]), []string{"local", "minio"}) {
		t.Errorf("delete result = %v, want deleted_from [local minio]", res)
	}
	if _, ok := c.listBackups()["e2e-tar"]; ok {
		t.Fatal("deleted backup still listed")
	}
	for _, s := range []store.Store{c.local(), c.minio()} {
		for _, k := range []string{tarKey, "postgres/e2e-tar.manifest.json"} {
			if _, err := s.Stat(context.Background(), k); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s still holds %s after delete (err %v)", s.Name(), k, err)
			}
		}
	}
	// The name is free again at once (the API's name index learns of the
	// delete from the worker's mark, before its next listing).
	out = c.create(client.CreateBackupRequest{BackupName: "e2e-tar", Format: "tar"})
	c.waitTask(out.TaskID, time.Minute)
	if _, err := c.admin().CreateBackup(t.Context(), client.CreateBackupRequest{BackupName: "e2e-tar"}); client.StatusOf(err) != http.StatusConflict {
		t.Errorf("create of the name just re-created = %v, want 409", err)
	}
	out = c.remove("e2e-tar")
	c.waitTask(out.TaskID, time.Minute)
	// The other backups are untouched.
	if got := len(c.listBackups()); got != 3 {
		t.Errorf("after deleting one of four, list has %d backups", got)
	}
	// Status of an unknown task is 404.
	if _, err := c.viewer().Task(t.Context(), "no-such-task"); client.StatusOf(err) != http.StatusNotFound {
		t.Errorf("unknown task: %v, want 404", err)
	}
}

// TestTwoSchedulersOneBackupPerSlot runs two schedulers on a 2-second slot:
// both fire every slot, yet each slot yields exactly one backup.
func TestTwoSchedulersOneBackupPerSlot(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "BACKUP_ENABLED=true", "BACKUP_SCHEDULE=@every 2s")
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (v int)`, `INSERT INTO t SELECT generate_series(1, 100)`)
	c.startAPI()
	c.start("worker", "worker")
	s1 := c.start("scheduler-1", "scheduler")
	time.Sleep(900 * time.Millisecond) // a different phase within the slot
	s2 := c.start("scheduler-2", "scheduler")
	time.Sleep(9 * time.Second)
	stop(t, s1, syscall.SIGTERM, 10*time.Second)
	stop(t, s2, syscall.SIGTERM, 10*time.Second)

	logs := logText(t, s1) + logText(t, s2)
	enqueued := strings.Count(logs, "scheduled task enqueued")
	conflicts := strings.Count(logs, "slot already enqueued by another scheduler")
	if enqueued < 3 || conflicts < 2 {
		t.Fatalf("schedulers enqueued %d and hit %d conflicts; want both firing every slot", enqueued, conflicts)
	}

	// Every enqueued slot completes, once, under its slot name.
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.env.RedisAddr, DB: c.redisDB})
	defer insp.Close()
	deadline := time.Now().Add(time.Minute)
	var names []string
	for time.Now().Before(deadline) {
		names = names[:0]
		for name := range c.listBackups() {
			if strings.HasPrefix(name, "autograph_scheduled_") {
				names = append(names, name)
			}
		}
		if len(names) == enqueued {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if len(names) != enqueued {
		t.Fatalf("%d scheduled backups listed (%v), want one per enqueued slot (%d)", len(names), names, enqueued)
	}
	archived, err := insp.ListArchivedTasks("backup")
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	if len(archived) != 0 {
		t.Fatalf("%d scheduled backups failed: %v", len(archived), archived[0].LastErr)
	}
	// Slot names are distinct slots two seconds apart.
	slices.Sort(names)
	for i := 1; i < len(names); i++ {
		a, _ := time.Parse("20060102_150405", strings.TrimPrefix(names[i-1], "autograph_scheduled_"))
		b, _ := time.Parse("20060102_150405", strings.TrimPrefix(names[i], "autograph_scheduled_"))
		if d := b.Sub(a); d < 2*time.Second || d%(2*time.Second) != 0 {
			t.Errorf("slots %s and %s are %s apart, want a multiple of 2s", names[i-1], names[i], d)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
