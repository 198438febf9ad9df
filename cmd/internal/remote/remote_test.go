package remote

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeService answers the routes the commands below use.
func fakeService(t *testing.T, bodies *[]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*bodies = append(*bodies, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		switch {
		case r.URL.Path == "/api/admin/backup/create":
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"task_id":"t1","backup_name":"b1","status_url":"/api/admin/tasks/t1"}`)
		case r.URL.Path == "/api/admin/targets/app/basebackup":
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"task_id":"t2","backup_name":"app_base_20261208_010203","status_url":"/api/admin/tasks/t2"}`)
		case r.URL.Path == "/api/admin/targets/plain/basebackup":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"bad request: target plain has no pitr"}`)
		case r.URL.Path == "/api/admin/tasks/t1":
			_, _ = io.WriteString(w, `{"task_id":"t1","type":"backup","queue":"default","state":"completed","error":"","retried":0,"max_retry":3}`)
		case r.URL.Path == "/api/admin/backup/b1/verify":
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":"busy"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"no such thing"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRemoteCommands(t *testing.T) {
	t.Parallel()
	var bodies []string
	srv := fakeService(t, &bodies)
	env := map[string]string{"PGBACKUP_URL": srv.URL, "PGBACKUP_TOKEN": "tok"}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(t.Context(), args, IO{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }, PollInterval: time.Millisecond})
		return code, out.String(), errb.String()
	}
	code, out, errs := run("backup", "b1", "--database", "app", "--include-globals", "--stores", "a, b", "--wait", "--json")
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(errs), "done") {
		t.Fatalf("backup --wait = %d\n%s\n%s", code, out, errs)
	}
	var st struct{ State string }
	if json.Unmarshal([]byte(out), &st) != nil || st.State != "completed" {
		t.Errorf("backup --wait --json printed %s", out)
	}
	want := `POST /api/admin/backup/create {"backup_name":"b1","database":"app","stores":["a","b"],"include_globals":true}`
	if bodies[0] != want {
		t.Errorf("request %s\nwant    %s", bodies[0], want)
	}
	code, out, errs = run("basebackup", "--target", "app")
	if code != 0 || strings.TrimSpace(out) != "task t2 enqueued (backup app_base_20261208_010203)" {
		t.Errorf("basebackup = %d\n%s\n%s", code, out, errs)
	}
	if last := bodies[len(bodies)-1]; last != "POST /api/admin/targets/app/basebackup " {
		t.Errorf("basebackup sent %q", last)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"basebackup", "--target", "plain"}, ExitUsage},
		{[]string{"basebackup"}, ExitUsage},
		{[]string{"verify", "b1"}, ExitFailed},
		{[]string{"status", "nope"}, ExitNotFound},
		{[]string{"delete", "--help"}, ExitOK},
		{[]string{"backup", "--progress"}, ExitUsage},
	} {
		if code, _, errs := run(tc.args...); code != tc.want {
			t.Errorf("%v = %d, want %d\n%s", tc.args, code, tc.want, errs)
		}
	}
}
