package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// TestBaseBackupsEnqueued starts base backups of a pitr target the three
// ways a user can, with no worker to run them, and finds each task in
// Redis as the workers would take it: through the API (202 with the
// reserved backup name), through pgbackup basebackup, and from the
// scheduler, once per slot of a shrunk base_backup_schedule, with the
// slot's backup name as task ID. A target without pitr is refused (400,
// exit 2), an unknown one is 404 (exit 3).
func TestBaseBackupsEnqueued(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "BACKUP_ENABLED=true", `BACKUP_TARGETS=[{"name":"app","pitr":true,"base_backup_schedule":"@every 2s"},{"name":"plain"}]`)
	c.startAPI()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.env.RedisAddr, DB: c.redisDB})
	t.Cleanup(func() { insp.Close() })
	// queued is the payload of the base backup task id, pending in its
	// queue.
	queued := func(id string) tasks.BaseBackupPayload {
		t.Helper()
		info, err := insp.GetTaskInfo(tasks.QueueBackup, id)
		if err != nil {
			t.Fatalf("task %s in queue %s: %v", id, tasks.QueueBackup, err)
		}
		var p tasks.BaseBackupPayload
		if info.Type != tasks.TypeBaseBackup || info.State != asynq.TaskStatePending || json.Unmarshal(info.Payload, &p) != nil {
			t.Fatalf("task %s: %s %s %s, want a pending %s", id, info.Type, info.State, info.Payload, tasks.TypeBaseBackup)
		}
		return p
	}

	var r client.Response
	before := time.Now().UTC().Truncate(time.Second)
	opts := []client.CallOption{client.WithResponse(&r), client.WithIdempotencyKey("base-1"), client.WithRequestID("req-base-1")}
	a := c.accepted("base backup of app", &r, must(c.admin().BaseBackupTarget(t.Context(), "app", opts...))(t), nil)
	// Repeated with its Idempotency-Key: the same answer, no second task.
	again := c.accepted("base backup of app, repeated", &r, must(c.admin().BaseBackupTarget(t.Context(), "app", opts...))(t), nil)
	if *again != *a || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("repeated request answered %+v (replayed %q), want the first answer %+v replayed", again, r.Header.Get("Idempotent-Replayed"), a)
	}
	if st := must(c.admin().Task(t.Context(), a.TaskID))(t); st.RequestID != "req-base-1" {
		t.Errorf("task request_id %q, want the request's req-base-1", st.RequestID)
	}
	at, err := time.Parse("20060102_150405", strings.TrimPrefix(a.BackupName, "app_base_"))
	if err != nil || at.Before(before) {
		t.Errorf("backup name %q, want app_base_ and the time of the request", a.BackupName)
	}
	if p := queued(a.TaskID); p != (tasks.BaseBackupPayload{Target: "app", BackupName: a.BackupName}) {
		t.Errorf("API's task payload %+v, want app's, named %s, not scheduled", p, a.BackupName)
	}
	for _, tc := range []struct {
		path string
		code int
	}{{"/api/admin/targets/plain/basebackup", http.StatusBadRequest}, {"/api/admin/targets/nope/basebackup", http.StatusNotFound}} {
		if code, _, body := c.raw(http.MethodPost, tc.path, adminToken, nil, nil); code != tc.code {
			t.Errorf("POST %s = %d %s, want %d", tc.path, code, body, tc.code)
		}
	}

	// The CLI, a second later (a name per second: the first one's is
	// reserved).
	time.Sleep(time.Until(at.Add(time.Second)))
	code, stdout, stderr := c.cli(nil, "basebackup", "--target", "app", "--json")
	var acc client.TaskAccepted
	if code != 0 || json.Unmarshal([]byte(stdout), &acc) != nil || !strings.HasPrefix(acc.BackupName, "app_base_") {
		t.Fatalf("pgbackup basebackup --target app --json = %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if p := queued(acc.TaskID); p.Target != "app" || p.BackupName != acc.BackupName {
		t.Errorf("CLI's task payload %+v, want app's named %s", p, acc.BackupName)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"basebackup", "--target", "plain"}, 2},
		{[]string{"basebackup", "--target", "nope"}, 3},
		{[]string{"basebackup"}, 2},
	} {
		if code, stdout, stderr := c.cli(nil, tc.args...); code != tc.want {
			t.Errorf("pgbackup %v = %d, want %d\nstdout %s\nstderr %s", tc.args, code, tc.want, stdout, stderr)
		}
	}

	// The scheduler: a base backup per 2-second slot, its ID the slot's
	// name (slots of @every are aligned to the epoch: even seconds).
	c.start("scheduler", "scheduler")
	var scheduled []string
	waitFor(t, time.Minute, "two scheduled base backups of app", func() bool {
		pending, err := insp.ListPendingTasks(tasks.QueueBackup, asynq.PageSize(100))
		if err != nil {
			return false
		}
		scheduled = scheduled[:0]
		for _, info := range pending {
			if info.ID != a.TaskID && info.ID != acc.TaskID {
				scheduled = append(scheduled, info.ID)
			}
		}
		return len(scheduled) >= 2
	})
	for _, id := range scheduled {
		slot, err := time.Parse("20060102_150405", strings.TrimPrefix(id, "app_base_"))
		if err != nil || slot.Unix()%2 != 0 {
			t.Errorf("scheduled task ID %q, want app_base_ and the start of a 2 s slot", id)
			continue
		}
		if p := queued(id); p != (tasks.BaseBackupPayload{Target: "app", Scheduled: true}) {
			t.Errorf("scheduled task %s payload %+v, want app's, scheduled, named by the worker after the task", id, p)
		}
	}
	tl := must(c.viewer().Targets(t.Context()))(t)
	for _, tg := range tl.Targets {
		if got := tg.BaseBackupSchedule != "" && tg.NextBaseBackup != nil; got != (tg.Name == "app") {
			t.Errorf("target %s lists base_backup_schedule %q next %v", tg.Name, tg.BaseBackupSchedule, tg.NextBaseBackup)
		}
	}
}

// TestBaseBackupButtonInABrowser: on the page, an admin sees a pitr
// target's base backup schedule in its WAL archive column and a Base
// backup button, which starts a backup:base task (shown queued: no worker
// runs here); a target without pitr has no such button, and a viewer
// none at all.
func TestBaseBackupButtonInABrowser(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "BACKUP_ENABLED=true", `BACKUP_TARGETS=[{"name":"app","pitr":true},{"name":"plain"}]`)
	c.startAPI()
	ctx := newBrowser(t)
	do(t, ctx, "open the page as admin", 30*time.Second, chromedp.Navigate(c.apiURL+"/ui/#token="+adminToken))
	row := func(name string) string { return `document.querySelector('#targets tr[data-name="` + name + `"]')` }
	waitJS(t, ctx, "the targets listed", row("app")+` !== null && `+row("plain")+` !== null`, 30*time.Second)
	if wal := evalJS[string](t, ctx, row("app")+`.querySelector("td.wal").textContent`); !strings.Contains(wal, "base backup @daily, next ") {
		t.Errorf("app's WAL archive column %q, want its base backup schedule and next run", wal)
	}
	if n := evalJS[int](t, ctx, row("plain")+`.querySelectorAll("button[data-action=basebackup]").length`); n != 0 {
		t.Errorf("plain (no pitr) offers %d base backup buttons, want none", n)
	}
	fitsThePhone(t, ctx, "targets with a base backup button")
	do(t, ctx, "start a base backup", 10*time.Second,
		chromedp.Click(chromedp.JSPath(row("app")+`.querySelector("button[data-action=basebackup]")`)))
	waitJS(t, ctx, "the base backup task shown", `(() => { const r = `+newestTask+`;
		return r && r.cells[1].textContent === "backup:base" && r.dataset.state === "pending"; })()`, 30*time.Second)
	if msg := evalJS[string](t, ctx, `document.querySelector("#msg").textContent`); msg != "" {
		t.Errorf("page says %q after starting a base backup", msg)
	}

	vctx, cancel := chromedp.NewContext(ctx)
	defer cancel()
	if err := chromedp.Do(vctx, chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile)); err != nil {
		t.Fatalf("browser: open a second tab: %v", err)
	}
	do(t, vctx, "open the page as a viewer", 30*time.Second, chromedp.Navigate(c.apiURL+"/ui/#token="+viewerToken))
	waitJS(t, vctx, "viewer sees the targets", row("app")+` !== null`, 30*time.Second)
	if n := evalJS[int](t, vctx, `document.querySelectorAll("button[data-action=basebackup]").length`); n != 0 {
		t.Errorf("viewer's page offers %d base backup buttons, want none", n)
	}
}
