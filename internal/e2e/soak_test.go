package e2e

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/soak"
)

// TestSoakShort is make bench's soak, shortened: backups of small
// databases queued at once through two API instances across three
// workers, one worker SIGKILLed and restarted twice while they run. None
// may be lost or made twice, every archive must match its checksum, and
// the two APIs, which share nothing but Redis, must give the same answers.
func TestSoakShort(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	dbs := []string{c.source, c.source + "_b", c.source + "_c"}
	for i, db := range dbs {
		c.env.CreateDB(t, db)
		if i > 0 {
			c.env.DropDBOnCleanup(t, db)
		}
		c.env.Exec(t, db, `CREATE TABLE t (id int PRIMARY KEY, v text)`,
			fmt.Sprintf(`INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, %d) g`, 2000*(i+1)))
	}
	c.startAPI()
	apiA := c.apiURL
	c.startAPI()
	apiB := c.apiURL
	workers := []*harness.Proc{c.start("worker-0", "worker"), c.start("worker-1", "worker"), c.start("worker-2", "worker")}

	// A name being backed up through one API is taken for the other; once
	// done it is still taken, and both report the same task.
	ctx, a, b := t.Context(), c.apiAt(apiA, adminToken), c.apiAt(apiB, adminToken)
	twice := client.CreateBackupRequest{BackupName: "twice"}
	var r client.Response
	out, err := a.CreateBackup(ctx, twice, client.WithResponse(&r))
	id := c.accepted("create through A", &r, out, err).TaskID
	if _, err := b.CreateBackup(ctx, twice); client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("same name through B while queued: %v, want 409", err)
	}
	c.waitTask(id, 2*time.Minute) // through B, the latest
	if _, err := b.CreateBackup(ctx, twice); client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("same name through B once done: %v, want 409", err)
	}
	stA, stB := must(a.Task(ctx, id))(t), must(b.Task(ctx, id))(t)
	if !reflect.DeepEqual(stA, stB) {
		t.Fatalf("task status differs:\nA %+v\nB %+v", stA, stB)
	}

	res, err := soak.Run(context.Background(), soak.Config{
		APIs: []string{apiA, apiB}, Token: adminToken, Databases: dbs,
		Backups: 24, Prefix: "soak", DisruptAt: []int{6, 12},
		Disrupt: func(i int) error {
			w := workers[i%len(workers)]
			if err := w.Kill(); err != nil {
				return err
			}
			w, err := w.Restart()
			workers[i%len(workers)] = w
			return err
		},
		Timeout: 5 * time.Minute, Store: c.minio(), Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak: %s", res)
	if !res.OK() || res.Disruptions != 2 {
		t.Fatalf("soak: %s\nlost %v\nfailed %v\nduplicates %v\nbad checksums %v\ndisagreements %v",
			res, res.Lost, res.Failed, res.Duplicates, res.BadChecksums, res.Disagreements)
	}
}
