package client

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCallOptionsSendHeaders(t *testing.T) {
	t.Parallel()
	f, c := newFakeAPI(t)
	var resp Response
	if _, err := c.CreateBackup(t.Context(), CreateBackupRequest{}, WithIdempotencyKey("key-7"), WithRequestID("req-7"), WithResponse(&resp)); err != nil {
		t.Fatal(err)
	}
	if got := f.headers.Get("Idempotency-Key"); got != "key-7" {
		t.Errorf("Idempotency-Key %q, want key-7", got)
	}
	if got := f.headers.Get("X-Request-ID"); got != "req-7" {
		t.Errorf("X-Request-ID %q, want req-7", got)
	}
	if want := examples["POST /api/admin/backup/create"]; resp.StatusCode != http.StatusAccepted || string(resp.Body) != want {
		t.Errorf("WithResponse got %d %s, want 202 and the example", resp.StatusCode, resp.Body)
	}
}

// TestAllBackupsFollowsPages reads three pages through their cursors.
func TestAllBackupsFollowsPages(t *testing.T) {
	t.Parallel()
	pages := map[string]string{
		"":   `{"backups":[{"backup_name":"c","format":"custom","database":"d","size_bytes":1,"sha256":"x","created_at":"2025-01-03T00:00:00Z","locations":null}],"count":1,"total":3,"next_cursor":"p2"}`,
		"p2": `{"backups":[{"backup_name":"b","format":"custom","database":"d","size_bytes":1,"sha256":"x","created_at":"2025-01-02T00:00:00Z","locations":null}],"count":1,"total":3,"next_cursor":"p3"}`,
		"p3": `{"backups":[{"backup_name":"a","format":"custom","database":"d","size_bytes":1,"sha256":"x","created_at":"2025-01-01T00:00:00Z","locations":null}],"count":1,"total":3}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("limit") != "1" {
			t.Errorf("limit %q, want 1", r.URL.Query().Get("limit"))
		}
		_, _ = w.Write([]byte(pages[r.URL.Query().Get("cursor")]))
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "t")
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.AllBackups(t.Context(), ListBackupsOptions{Limit: 1})
	if err != nil || len(all) != 3 || all[0].BackupName != "c" || all[2].BackupName != "a" {
		t.Fatalf("AllBackups = %+v, %v; want c, b, a", all, err)
	}
	if b, err := c.FindBackup(t.Context(), "b", ListBackupsOptions{Limit: 1}); err != nil || b.BackupName != "b" {
		t.Errorf("FindBackup(b) = %+v, %v", b, err)
	}
	if _, err := c.FindBackup(t.Context(), "zz", ListBackupsOptions{Limit: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindBackup(zz) = %v, want ErrNotFound", err)
	}
}

// TestErrors checks what a caller learns from a refused or lost request.
func TestErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-ID", "rid-1")
		switch r.URL.Path {
		case "/api/whoami":
			w.Header().Set("Retry-After", "17")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":"too many failed authentications"}`))
		case "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"unavailable","error":"redis unreachable"}`))
		case "/api/admin/tasks/gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"task not found"}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("proxy says no\n"))
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "t")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WhoAmI(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 429 || e.RetryAfter != 17*time.Second || e.RequestID != "rid-1" ||
		e.Message != "too many failed authentications" || err.Error() != "GET /api/whoami: 429 too many failed authentications" {
		t.Errorf("429: %#v (%v)", e, err)
	}
	if _, err := c.Readyz(t.Context()); StatusOf(err) != 503 || !errors.As(err, &e) || e.Message != "redis unreachable" {
		t.Errorf("readyz: %v, want 503 redis unreachable", err)
	}
	if _, err := c.Task(t.Context(), "gone"); !errors.Is(err, ErrNotFound) || StatusOf(err) != 404 {
		t.Errorf("missing task: %v, want ErrNotFound", err)
	}
	if _, err := c.Targets(t.Context()); !errors.As(err, &e) || e.Message != "proxy says no" || e.StatusCode != 502 {
		t.Errorf("502 with text: %v", err)
	}
	srv.Close()
	if _, err := c.Healthz(t.Context()); !errors.Is(err, ErrUnreachable) || StatusOf(err) != 0 {
		t.Errorf("closed server: %v, want ErrUnreachable", err)
	}
	if _, err := New("ftp://x", ""); err == nil {
		t.Error("New accepted an ftp URL")
	}
}
