package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// TestSignedByDefaultTrustsOnlyVerifiedManifests runs the real programs
// with a signing key and nothing else about signatures set: a manifest
// forged in the bucket is listed as not signed and counted by /metrics;
// allow_unsigned is refused by the API (403 naming the setting) and, for
// a task queued behind the API's back, by the worker, without retry.
func TestSignedByDefaultTrustsOnlyVerifiedManifests(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "BACKUP_SIGNING_KEY="+signingKey)
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t AS SELECT 1 AS x`)
	api := c.startAPI()
	c.start("worker", "worker")
	for _, name := range []string{"good", "forged"} {
		c.waitTask(c.create(client.CreateBackupRequest{BackupName: name, Stores: []string{"minio"}}).TaskID, 2*time.Minute)
	}
	if strings.Contains(logText(t, api), "BACKUP_SIGNING_KEY is not set") {
		t.Error("the api warns about a missing signing key it has")
	}
	if list := c.listBackups(); !list["good"].Signed || !list["forged"].Signed {
		t.Fatalf("before tampering: %+v, want both signed", list)
	}
	// The forged manifest keeps a signature field, which used to be all
	// that "signed" looked at.
	tamperManifest(t, c, "forged", func(m map[string]any) { m["database"] = "postgres" })
	if list := c.listBackups(); !list["good"].Signed || list["forged"].Signed {
		t.Errorf("after tampering: good signed=%v, forged signed=%v; want true, false", list["good"].Signed, list["forged"].Signed)
	}
	fams := c.scrape()
	if on, bad := metric(fams, "pgbackup_manifest_signing_enabled", nil), metric(fams, "pgbackup_manifests_unverified", nil); on != 1 || bad != 1 {
		t.Errorf("metrics: signing_enabled=%v manifests_unverified=%v, want 1 and 1", on, bad)
	}

	for path, body := range map[string]any{
		"/api/admin/backup/restore":       map[string]any{"backup_name": "forged", "target_database": "e2e_never", "allow_unsigned": true},
		"/api/admin/backup/forged/verify": map[string]any{"allow_unsigned": true},
	} {
		code, _, text := c.raw(http.MethodPost, path, adminToken, nil, body)
		if code != http.StatusForbidden || !strings.Contains(string(text), "REFUSE_UNSIGNED_RESTORES") {
			t.Errorf("POST %s with allow_unsigned: %d %s, want 403 naming REFUSE_UNSIGNED_RESTORES", path, code, text)
		}
	}

	// Someone who can write Redis queues the verify the API refused.
	task, err := tasks.NewTask(tasks.VerifyPayload{BackupName: "forged", AllowUnsigned: true}, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q := asynq.NewClient(asynq.RedisClientOpt{Addr: c.env.RedisAddr, DB: c.redisDB})
	defer q.Close()
	info, err := q.EnqueueContext(t.Context(), task)
	if err != nil {
		t.Fatal(err)
	}
	st := c.waitTask(info.ID, time.Minute, "archived")
	if st.Error != "signature invalid" || st.Retried != 0 {
		t.Errorf("verify queued with allow_unsigned ended %q after %d retries; want signature invalid at once", st.Error, st.Retried)
	}
}

// TestUnsignedProgramsWarn: without a key, every program says so at
// start, and /metrics shows it.
func TestUnsignedProgramsWarn(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	procs := map[string]interface{ Output() (string, error) }{"api": c.startAPI(), "worker": c.start("worker", "worker"),
		"scheduler": c.start("scheduler", "scheduler")}
	for name, p := range procs {
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := p.Output()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, "BACKUP_SIGNING_KEY is not set") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never warned that manifests are not signed; its log:\n%s", name, tail(out, 2000))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if on := metric(c.scrape(), "pgbackup_manifest_signing_enabled", nil); on != 0 {
		t.Errorf("pgbackup_manifest_signing_enabled = %v without a key, want 0", on)
	}
}
