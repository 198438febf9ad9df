package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// scheduledOf returns the target's scheduled backups in the listing, sorted.
func scheduledOf(list map[string]client.Backup, target string) []string {
	var out []string
	for name := range list {
		if strings.HasPrefix(name, target+"_scheduled_") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// scrape reads /metrics with the Prometheus text parser.
func (c *cluster) scrape() map[string]*dto.MetricFamily {
	c.t.Helper()
	text := must(c.viewer().Metrics(c.t.Context()))(c.t)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		c.t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// metric returns the value of the family's sample whose labels include
// want, or -1.
func metric(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return -1
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// queueIdle reports whether no task of the cluster is pending, active,
// scheduled or retrying.
func (c *cluster) queueIdle() bool {
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.env.RedisAddr, DB: c.redisDB})
	defer insp.Close()
	for _, q := range tasks.AllQueues {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			continue // a queue nothing was put in yet
		}
		if info.Pending+info.Active+info.Scheduled+info.Retry > 0 {
			return false
		}
	}
	return true
}

func TestTargetsRetentionMetricsAndDryRun(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	dbA, dbB := testbench.UniqueName("tgt_alpha"), testbench.UniqueName("tgt_beta")
	for _, db := range []string{dbA, dbB} {
		env.CreateDB(t, db)
		env.Exec(t, db, `CREATE TABLE items (id int PRIMARY KEY, v text)`, `INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 500) g`)
	}
	targets := func(keep int) string {
		return fmt.Sprintf(`BACKUP_TARGETS=[{"name":"alpha","database":%q,"schedule":"@every 3s","retention":{"keep_last":%d},"stores":["minio"]},`+
			`{"name":"beta","database":%q,"schedule":"@every 3s","keep_last":%d,"rpo":"1h"}]`, dbA, keep, dbB, keep)
	}
	c := newCluster(t, "BACKUP_ENABLED=true", targets(2), "WORKER_CONCURRENCY=2")
	api := c.startAPI()
	worker := c.start("worker", "worker")
	sched := c.start("scheduler", "scheduler")

	// A manual backup of alpha's database, by name and by target: neither
	// is ever pruned.
	out := c.create(client.CreateBackupRequest{BackupName: "alpha-manual", Database: dbA})
	c.waitTask(out.TaskID, time.Minute)
	out = c.create(client.CreateBackupRequest{BackupName: "alpha-by-target", Target: "alpha"})
	c.waitTask(out.TaskID, time.Minute)

	before := c.scrape()
	if metric(before, "pgbackup_build_info", nil) != 1 {
		t.Error("pgbackup_build_info missing")
	}
	// About 20 s of @every 3s: at least five scheduled backups per target.
	waitFor(t, 90*time.Second, "five scheduled backups of each target", func() bool {
		f := c.scrape()
		return metric(f, "pgbackup_backups_total", map[string]string{"target": "alpha", "outcome": "success"}) >= 6 &&
			metric(f, "pgbackup_backups_total", map[string]string{"target": "beta", "outcome": "success"}) >= 5
	})
	stop(t, sched, syscall.SIGTERM, 20*time.Second)
	waitFor(t, time.Minute, "the queue to drain", c.queueIdle)

	list := c.listBackups()
	for _, target := range []string{"alpha", "beta"} {
		if got := scheduledOf(list, target); len(got) != 2 {
			t.Errorf("%s has scheduled backups %v, want exactly 2 (keep_last 2)", target, got)
		}
	}
	for _, manual := range []string{"alpha-manual", "alpha-by-target"} {
		if _, ok := list[manual]; !ok {
			t.Errorf("manual backup %s was pruned", manual)
		}
	}
	if locs := list[scheduledOf(list, "alpha")[0]].Locations; len(locs) != 1 || locs[0] != "minio" {
		t.Errorf("alpha's backups are in %v, want its stores [minio]", locs)
	}

	after := c.scrape()
	for _, name := range []string{"pgbackup_last_success_timestamp_seconds", "pgbackup_last_backup_size_bytes", "pgbackup_last_backup_duration_seconds"} {
		if v := metric(after, name, map[string]string{"target": "beta"}); v <= 0 {
			t.Errorf("%s{target=beta} = %v, want a positive value", name, v)
		}
	}
	if v, w := metric(after, "pgbackup_rpo_seconds", map[string]string{"target": "beta"}), metric(after, "pgbackup_rpo_target_seconds", map[string]string{"target": "beta"}); v < 0 || v > 60 || w != 3600 {
		t.Errorf("beta's rpo_seconds %v and rpo_target_seconds %v, want a fresh age and 3600", v, w)
	}
	if metric(after, "asynq_tasks_enqueued_total", map[string]string{"queue": "backup"}) < 0 {
		t.Error("asynq's queue metrics are missing")
	}

	// GET /api/admin/targets shows both, with their newest backups.
	for _, tg := range must(c.admin().Targets(t.Context()))(t).Targets {
		if tg.Schedule != "@every 3s" || tg.NewestBackup == nil {
			t.Errorf("target %+v: want its schedule and newest backup", tg)
		}
	}

	// Tighten alpha's retention: the dry run lists what the prune then
	// deletes, exactly.
	stop(t, api, syscall.SIGTERM, 10*time.Second)
	stop(t, worker, syscall.SIGTERM, 20*time.Second)
	c.startAPI(targets(1))
	c.start("worker-2", "worker", targets(1))
	wouldDelete := must(c.admin().PrunePreview(t.Context(), "alpha"))(t).WouldDelete
	alpha := scheduledOf(c.listBackups(), "alpha")
	if len(wouldDelete) != 1 || wouldDelete[0] != alpha[0] {
		t.Fatalf("dry run would delete %v, want the older of %v", wouldDelete, alpha)
	}
	if _, ok := c.listBackups()[alpha[0]]; !ok {
		t.Fatal("the dry run deleted something")
	}
	var r client.Response
	out, err := c.admin().PruneTarget(t.Context(), "alpha", client.WithResponse(&r))
	st := c.waitTask(c.accepted("prune", &r, out, err).TaskID, time.Minute)
	deleted := toStrings(result(t, st)["deleted"])
	if !slices.Equal(deleted, wouldDelete) {
		t.Fatalf("prune deleted %v, the dry run listed %v", deleted, wouldDelete)
	}
	list = c.listBackups()
	if got := scheduledOf(list, "alpha"); len(got) != 1 || got[0] != alpha[1] {
		t.Fatalf("alpha keeps %v, want only %s", got, alpha[1])
	}
	if _, err := c.viewer().PrunePreview(t.Context(), "nope"); client.StatusOf(err) != http.StatusNotFound {
		t.Errorf("dry run of an unknown target = %v, want 404", err)
	}
	if _, err := c.viewer().PruneTarget(t.Context(), "alpha"); client.StatusOf(err) != http.StatusForbidden {
		t.Errorf("prune by a viewer = %v, want 403", err)
	}
}

// receiver is a webhook endpoint that records events with valid
// signatures and fails the first failFirst requests.
type receiver struct {
	t         *testing.T
	secret    string
	failFirst int

	mu       sync.Mutex
	attempts int
	events   []alert.Event
	badSig   int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.attempts <= r.failFirst {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if alert.Verify([]byte(r.secret), req.Header.Get(alert.TimestampHeader), req.Header.Get(alert.SignatureHeader), body, time.Now(), 5*time.Minute) != nil {
		r.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e alert.Event
	if err := json.Unmarshal(body, &e); err != nil || e.Text == "" || e.At.IsZero() {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.events = append(r.events, e)
}

func (r *receiver) count(event, target string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Event == event && e.Target == target {
			n++
		}
	}
	return n
}

func (r *receiver) find(event, target string) alert.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Event == event && e.Target == target {
			return e
		}
	}
	return alert.Event{}
}

func TestAlertsRPOAndDrills(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	const secret = "webhook-secret-for-the-e2e-test"
	good := &receiver{t: t, secret: secret}
	flaky := &receiver{t: t, secret: secret, failFirst: 2}
	gs, fs := httptest.NewServer(good), httptest.NewServer(flaky)
	t.Cleanup(gs.Close)
	t.Cleanup(fs.Close)
	db := testbench.UniqueName("tgt_gamma")
	env.CreateDB(t, db)
	env.Exec(t, db, `CREATE TABLE ledger (id int PRIMARY KEY, amount numeric)`, `INSERT INTO ledger SELECT g, g * 1.5 FROM generate_series(1, 2345) g`,
		`CREATE TABLE notes (id int PRIMARY KEY, note text)`, `INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 77) g`)
	c := newCluster(t, "BACKUP_ENABLED=true",
		fmt.Sprintf(`BACKUP_TARGETS=[{"name":"gamma","database":%q,"rpo":"4s","stores":["minio"]},{"name":"broken","database":"no_such_database_here"}]`, db),
		"ALERT_WEBHOOK_URLS="+gs.URL+","+fs.URL, "ALERT_WEBHOOK_SECRET="+secret,
		"RPO_CHECK_INTERVAL=1s", "TASK_MAX_RETRY=2", "TASK_RETRY_DELAY=300ms")
	c.startAPI()
	worker := c.start("worker", "worker")
	// Two schedulers: each RPO change must still be reported once.
	c.start("scheduler-a", "scheduler")
	c.start("scheduler-b", "scheduler")

	backupGamma := func() {
		out := c.create(client.CreateBackupRequest{Target: "gamma"})
		c.waitTask(out.TaskID, time.Minute)
	}
	backupGamma()

	// A drill of a real backup passes with the recorded counts.
	drill := func() *client.TaskAccepted {
		t.Helper()
		var r client.Response
		out, err := c.admin().DrillTarget(t.Context(), "gamma", client.WithResponse(&r))
		return c.accepted("drill gamma", &r, out, err)
	}
	st := c.waitTask(drill().TaskID, 2*time.Minute)
	res := result(t, st)
	if res["passed"] != true || res["tables_checked"].(float64) != 2 || res["rto_seconds"].(float64) <= 0 {
		t.Fatalf("drill result %v, want passed with 2 tables and a measured RTO", res)
	}
	drills := must(c.admin().Drills(t.Context(), client.DrillsOptions{Target: "gamma"}))(t)
	if drills.Count != 1 {
		t.Fatalf("drills = %+v, want the one drill", drills)
	}
	if !env.DatabaseExists(t, "postgres") || dbExistsLike(t, env, "pgbackup_drill_gamma_") {
		t.Fatal("the drill left its scratch database")
	}
	if v := metric(c.scrape(), "pgbackup_last_drill_rto_seconds", map[string]string{"target": "gamma"}); v <= 0 {
		t.Errorf("pgbackup_last_drill_rto_seconds{target=gamma} = %v", v)
	}

	// A failing target: one alert once the retries are used up, and its
	// failure counter rises.
	failedBefore := metric(c.scrape(), "pgbackup_backups_total", map[string]string{"target": "broken", "outcome": "failed"})
	out := c.create(client.CreateBackupRequest{Target: "broken", BackupName: "will-fail"})
	st = c.waitTask(out.TaskID, time.Minute, "archived")
	if st.Retried != 2 {
		t.Errorf("failed backup retried %v times, want 2", st.Retried)
	}
	waitFor(t, 30*time.Second, "backup.failed at the webhook", func() bool { return good.count(alert.EventBackupFailed, "broken") > 0 })
	if e := good.find(alert.EventBackupFailed, "broken"); e.BackupName != "will-fail" || e.Error == "" || e.TaskID == "" {
		t.Errorf("backup.failed event %+v, want the backup, the task and a classified error", e)
	}
	if after := metric(c.scrape(), "pgbackup_backups_total", map[string]string{"target": "broken", "outcome": "failed"}); failedBefore != 0 || after != 1 {
		t.Errorf("backups_total{target=broken,outcome=failed} went from %v to %v, want 0 to 1", failedBefore, after)
	}

	// No worker: the newest backup ages past the 4 s RPO and the
	// schedulers notice, alone.
	stop(t, worker, syscall.SIGTERM, 20*time.Second)
	waitFor(t, 30*time.Second, "rpo.breached", func() bool { return good.count(alert.EventRPOBreached, "gamma") > 0 })
	c.start("worker-2", "worker")
	backupGamma()
	waitFor(t, 30*time.Second, "rpo.recovered", func() bool { return good.count(alert.EventRPORecovered, "gamma") > 0 })
	// Two schedulers checked every second all along: still one breach and
	// one recovery. (With a 4 s RPO and no more backups, gamma breaches
	// again a few seconds from now, legitimately: count before that.)
	if b, r := good.count(alert.EventRPOBreached, "gamma"), good.count(alert.EventRPORecovered, "gamma"); b != 1 || r != 1 {
		t.Errorf("rpo.breached arrived %d times and rpo.recovered %d times, want once each", b, r)
	}

	// A drill of a tampered archive fails, is recorded, and alerts.
	tamperArchive(t, c, "gamma")
	st = c.waitTask(drill().TaskID, time.Minute, "archived")
	if st.Error != "checksum mismatch" {
		t.Errorf("drill of a tampered archive failed with %q, want checksum mismatch", st.Error)
	}
	waitFor(t, 30*time.Second, "drill.failed at the webhook", func() bool { return good.count(alert.EventDrillFailed, "gamma") > 0 })
	drills = must(c.admin().Drills(t.Context(), client.DrillsOptions{Target: "gamma"}))(t)
	if list := drills.Drills; len(list) != 2 || list[0].Passed {
		t.Errorf("drills = %+v, want the failed one first", drills)
	}

	// Each failure went out once, signed; the flaky receiver got every
	// event through retries.
	for _, e := range []string{alert.EventBackupFailed, alert.EventDrillFailed} {
		target := "gamma"
		if e == alert.EventBackupFailed {
			target = "broken"
		}
		if n := good.count(e, target); n != 1 {
			t.Errorf("%s for %s arrived %d times, want once", e, target, n)
		}
	}
	for _, e := range []string{alert.EventBackupFailed, alert.EventRPOBreached, alert.EventRPORecovered, alert.EventDrillFailed} {
		target := "gamma"
		if e == alert.EventBackupFailed {
			target = "broken"
		}
		waitFor(t, time.Minute, e+" at the flaky receiver", func() bool { return flaky.count(e, target) >= 1 })
	}
	if good.badSig != 0 || flaky.badSig != 0 {
		t.Errorf("%d and %d requests with a bad signature", good.badSig, flaky.badSig)
	}
	if flaky.attempts < 6 {
		t.Errorf("the flaky receiver saw %d attempts, want its 2 failures retried", flaky.attempts)
	}
}

// tamperArchive flips a byte of the target's newest archive in MinIO.
func tamperArchive(t *testing.T, c *cluster, target string) {
	t.Helper()
	for _, tg := range must(c.admin().Targets(t.Context()))(t).Targets {
		if tg.Name != target {
			continue
		}
		name := tg.NewestBackup.BackupName
		corrupt(t, c.minio(), c.listBackups()[name].ArchiveKey)
		return
	}
	t.Fatalf("target %s not listed", target)
}

func dbExistsLike(t *testing.T, env testbench.Env, prefix string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, env.PGURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)`, prefix).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}
