package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/testbench"
)

// chromium finds Debian's Chromium. make test installs it (testbench
// install); run outside make test, the browser test is skipped without it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("PGBACKUP_CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("PGBACKUP_TEST_REQUIRED") != "" {
		t.Fatal("chromium not found although PGBACKUP_TEST_REQUIRED is set; `bin/testbench install` installs it")
	}
	t.Skip("chromium not found; install Debian's chromium or run through make test")
	return ""
}

// phone is the viewport the page is driven in: a 390 px wide phone, so
// that every step below also shows the page works at that width.
const phoneWidth, phoneHeight = 390, 844

// newBrowser starts a headless Chromium of its own, with a fresh profile
// in the test's temp dir, and returns a tab. On failure the tab's
// screenshot goes to the test's artifact directory (kept with
// go test -artifacts, as make test runs it).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		// Root (as in CI) cannot use Chromium's sandbox.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// The machine's network is closed: without these Chromium keeps
		// trying to reach its own services.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(phoneWidth, phoneHeight),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancelTab)
	artifacts := t.ArtifactDir()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("no screenshot: %v", err)
			return
		}
		msg, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`document.querySelector("#msg").textContent`))
		path := filepath.Join(artifacts, "failure.png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Logf("no screenshot: %v", err)
			return
		}
		t.Logf("screenshot of the page at failure: %s (message line: %q)", path, msg)
	})
	// The first run starts the browser and must not have a deadline: it
	// would stop the browser with it.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs browser actions with a deadline, failing the test with what
// was being done.
func do(t *testing.T, ctx context.Context, what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// waitJS waits until a JavaScript expression is truthy in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(tctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		t.Fatalf("browser: wait for %s: %v", what, err)
	}
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// newestTask is the newest row of the page's task table, as the page
// shows it.
const newestTask = `document.querySelector("#tasks tbody tr")`

// waitNewestTask waits until the newest task row is a task of the given
// type and done, and fails at once if the page shows it failed.
func waitNewestTask(t *testing.T, ctx context.Context, typ string) {
	t.Helper()
	waitJS(t, ctx, typ+" task shown finished", `(() => { const r = `+newestTask+`;
		return r && r.cells[1].textContent === "`+typ+`" && (r.dataset.state === "completed" || r.dataset.state === "archived"); })()`, 3*time.Minute)
	state := evalJS[string](t, ctx, newestTask+`.cells[2].textContent + " " + `+newestTask+`.cells[6].textContent`)
	if state != "done " {
		t.Fatalf("%s task: page shows %q, want done with no error", typ, state)
	}
}

// fitsThePhone checks that nothing makes the page wider than the phone,
// so nothing needs sideways scrolling, and that every visible button lies
// within the screen's width.
func fitsThePhone(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	bad := evalJS[string](t, ctx, `(() => {
		const w = document.documentElement.clientWidth;
		if (document.documentElement.scrollWidth > w) return "page is " + document.documentElement.scrollWidth + " px wide in a " + w + " px screen";
		for (const b of document.querySelectorAll("button")) {
			const r = b.getBoundingClientRect();
			if (r.width > 0 && (r.left < 0 || r.right > w)) return "button " + b.textContent + " spans " + r.left + ".." + r.right;
		}
		return "";
	})()`)
	if bad != "" {
		t.Errorf("at %d px, %s: %s", phoneWidth, when, bad)
	}
}

// TestBackupsPageInABrowser drives the backups page in headless Chromium
// against the real API and a worker, as an operator on a phone would:
// back up, watch it finish, see it listed, restore it into a new
// database, delete it; then checks what a viewer's token is offered.
func TestBackupsPageInABrowser(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE orders (id int PRIMARY KEY, note text)`,
		`INSERT INTO orders SELECT g, repeat('x', g % 50) FROM generate_series(1, 3000) g`)
	want := c.env.Fingerprint(t, c.source)
	c.startAPI()
	c.start("worker", "worker")
	ctx := newBrowser(t)

	do(t, ctx, "open the page with the token in the fragment", 30*time.Second,
		chromedp.Navigate(c.apiURL+"/ui/#token="+adminToken),
		chromedp.WaitVisible(chromedp.CSS("#new-backup")))
	if href := evalJS[string](t, ctx, `location.href`); strings.Contains(href, adminToken) || strings.Contains(href, "token") {
		t.Errorf("the token is still in the address bar: %s", href)
	}
	if role := evalJS[string](t, ctx, `document.querySelector("#role").textContent`); role != "admin" {
		t.Errorf("page shows role %q, want admin", role)
	}
	fitsThePhone(t, ctx, "empty page")

	// Back up, and watch the page show it running, then done.
	name := "ui-" + strings.ReplaceAll(c.source, "_", "-")
	do(t, ctx, "start a backup", 10*time.Second,
		chromedp.SetValue(chromedp.CSS(`#create input[name=backup_name]`), name),
		chromedp.SetValue(chromedp.CSS(`#create select[name=format]`), "custom"),
		chromedp.Click(chromedp.CSS(`#create button[type=submit]`)))
	waitNewestTask(t, ctx, "backup:create")
	if p := evalJS[string](t, ctx, newestTask+`.cells[3].textContent`); !strings.Contains(p, "iB") {
		t.Errorf("finished backup shows progress %q, want its phase and bytes", p)
	}

	// Listed with its size and where it is, as the API lists it.
	api, ok := c.listBackups()[name]
	if !ok {
		t.Fatalf("backup %s not listed by the API", name)
	}
	row := fmt.Sprintf(`document.querySelector('#backups tr[data-name=%q]')`, name)
	waitJS(t, ctx, "backup listed", row+` !== null`, 30*time.Second)
	size := evalJS[string](t, ctx, row+`.querySelector("td.size").textContent`)
	where := evalJS[[]string](t, ctx, `[...`+row+`.querySelectorAll("td.where .tag")].map(s => s.textContent)`)
	if wantSize := humanBytes(api.SizeBytes); size != wantSize {
		t.Errorf("page shows size %q, want %q", size, wantSize)
	}
	if got, want := strings.Join(where, ","), strings.Join(api.Locations, ","); got != want || want == "" {
		t.Errorf("page shows locations %q, want %q", got, want)
	}
	fitsThePhone(t, ctx, "a backup listed")

	// Restore into a new database through the page's dialog.
	target := c.source + "_ui"
	c.env.DropDBOnCleanup(t, target)
	do(t, ctx, "restore into a new database", 10*time.Second,
		chromedp.Click(chromedp.JSPath(row+`.querySelector("button[data-action=restore]")`)),
		chromedp.WaitVisible(chromedp.CSS(`#restore-dialog input[name=target_database]`)),
		chromedp.SetValue(chromedp.CSS(`#restore-dialog input[name=target_database]`), target),
		chromedp.Click(chromedp.CSS(`#restore-ok`)))
	waitNewestTask(t, ctx, "backup:restore")
	if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, target), want); diff != "" {
		t.Fatalf("database restored through the page differs from the source: %s", diff)
	}

	// Delete, confirming in the page's dialog; the row goes.
	do(t, ctx, "delete the backup", 10*time.Second,
		chromedp.Click(chromedp.JSPath(row+`.querySelector("button[data-action=delete]")`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-ok`)),
		chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	waitNewestTask(t, ctx, "backup:delete")
	waitJS(t, ctx, "deleted backup gone from the list", row+` === null`, 30*time.Second)
	if _, ok := c.listBackups()[name]; ok {
		t.Errorf("backup %s still listed by the API after the page deleted it", name)
	}

	// A viewer, in a tab of its own (the token lives in the tab's session
	// storage), sees the backups but no button that would act on them.
	out := c.create(client.CreateBackupRequest{BackupName: name + "-v"})
	c.waitTask(out.TaskID, 3*time.Minute)
	vctx, cancel := chromedp.NewContext(ctx)
	defer cancel()
	// The tab's first run opens it; no deadline, as for the browser.
	if err := chromedp.Do(vctx, chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile)); err != nil {
		t.Fatalf("browser: open a second tab: %v", err)
	}
	do(t, vctx, "open the page as a viewer", 30*time.Second, chromedp.Navigate(c.apiURL+"/ui/#token="+viewerToken))
	waitJS(t, vctx, "viewer sees the backup", fmt.Sprintf(`document.querySelector('#backups tr[data-name=%q]') !== null`, name+"-v"), 30*time.Second)
	if role := evalJS[string](t, vctx, `document.querySelector("#role").textContent`); role != "viewer" {
		t.Errorf("viewer's page shows role %q", role)
	}
	if n := evalJS[int](t, vctx, `document.querySelectorAll("button[data-action]").length`); n != 0 {
		t.Errorf("viewer's page offers %d action buttons, want none", n)
	}
	if visible := evalJS[bool](t, vctx, `document.querySelector("#new-backup").checkVisibility()`); visible {
		t.Error("viewer's page shows the new-backup form")
	}
	if href := evalJS[string](t, vctx, `location.href`); strings.Contains(href, "token") {
		t.Errorf("the viewer's token is still in the address bar: %s", href)
	}
	fitsThePhone(t, vctx, "viewer's page")
}

// humanBytes is the page's own formatting of a size (app.js).
func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
