package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/tasks"
)

const hookSecret = "webhook-secret"

// hook is a webhook receiver that records what it was sent.
type hook struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []hookRequest
}

type hookRequest struct {
	timestamp, signature string
	body                 []byte
}

func newHook(t *testing.T, answer func(w http.ResponseWriter)) *hook {
	h := &hook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{r.Header.Get(alert.TimestampHeader), r.Header.Get(alert.SignatureHeader), body})
		h.mu.Unlock()
		answer(w)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

func ok(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// queued captures what the alerter enqueues.
type queued struct{ tasks []*asynq.Task }

func (q *queued) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	q.tasks = append(q.tasks, t)
	return &asynq.TaskInfo{}, nil
}

// TestAlertTasksCarryAWebhookIDNotAURL: whoever can write to the queue must
// not choose where signed alerts go, so the URL stays in the configuration.
func TestAlertTasksCarryAWebhookIDNotAURL(t *testing.T) {
	t.Parallel()
	h := newHook(t, ok)
	url := h.URL + "/hooks/secret-path"
	q := &queued{}
	a := &alert.Alerter{URLs: []string{url}, Queue: q, Options: tasks.Options{MaxRetry: 3}}
	a.Emit(context.Background(), alert.Event{Event: alert.EventBackupFailed, Target: "shop"})
	if len(q.tasks) != 1 {
		t.Fatalf("%d tasks enqueued, want 1", len(q.tasks))
	}
	raw := q.tasks[0].Payload()
	if strings.Contains(string(raw), "secret-path") || strings.Contains(string(raw), h.URL) {
		t.Fatalf("the task payload names the URL: %s", raw)
	}
	var p alert.Payload
	if err := json.Unmarshal(raw, &p); err != nil || p.WebhookID != alert.WebhookID(url) {
		t.Fatalf("payload %s: webhook_id %q, want %q (%v)", raw, p.WebhookID, alert.WebhookID(url), err)
	}
	w := &AlertWorker{Webhooks: a.Webhooks(), Secret: []byte(hookSecret)}
	if _, err := w.Work(context.Background(), p); err != nil {
		t.Fatalf("delivery by id: %v", err)
	}
	if n := len(h.requests()); n != 1 {
		t.Fatalf("the webhook got %d requests, want 1", n)
	}
}

// TestAlertsGoOnlyToConfiguredWebhooks: an unknown id, or a task queued
// before ids whose URL is no longer configured, fails at once and sends
// nothing; an old task whose URL is still configured is delivered.
func TestAlertsGoOnlyToConfiguredWebhooks(t *testing.T) {
	t.Parallel()
	configured, stranger := newHook(t, ok), newHook(t, ok)
	w := &AlertWorker{Webhooks: alert.NewWebhooks([]string{configured.URL})}
	event := alert.Event{Event: alert.EventBackupFailed}
	tests := []struct {
		name    string
		p       alert.Payload
		wantErr error
	}{
		{"old task, URL still configured", alert.Payload{URL: configured.URL, Event: event}, nil},
		{"old task, URL no longer configured", alert.Payload{URL: stranger.URL, Event: event}, tasks.ErrUnknownWebhook},
		{"unknown id", alert.Payload{WebhookID: alert.WebhookID(stranger.URL), Event: event}, tasks.ErrUnknownWebhook},
		{"id wins over a URL", alert.Payload{WebhookID: alert.WebhookID(configured.URL), URL: stranger.URL, Event: event}, nil},
		{"neither", alert.Payload{Event: event}, tasks.ErrBadPayload},
	}
	for _, tt := range tests {
		_, err := w.Work(context.Background(), tt.p)
		if !errors.Is(err, tt.wantErr) || (err != nil && !tasks.Permanent(err)) {
			t.Errorf("%s: err = %v, want %v, not retried", tt.name, err, tt.wantErr)
		}
	}
	if n := len(stranger.requests()); n != 0 {
		t.Fatalf("an unconfigured URL got %d requests", n)
	}
	if n := len(configured.requests()); n != 2 {
		t.Fatalf("the configured webhook got %d requests, want 2", n)
	}
}

// TestAlertRedirectsAreNotFollowed: a redirect would carry the signed event
// to a URL nobody configured; the 3xx is a failed delivery.
func TestAlertRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	elsewhere := newHook(t, ok)
	redirecting := newHook(t, func(w http.ResponseWriter) {
		w.Header().Set("Location", elsewhere.URL)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	w := &AlertWorker{Webhooks: alert.NewWebhooks([]string{redirecting.URL}), Client: &http.Client{Timeout: 5 * time.Second}}
	out, err := w.Work(context.Background(), alert.Payload{WebhookID: alert.WebhookID(redirecting.URL), Event: alert.Event{Event: alert.EventRPOBreached}})
	if err == nil || out.Status != http.StatusTemporaryRedirect {
		t.Fatalf("a redirect: status %d, err %v; want 307 as a failure", out.Status, err)
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Fatalf("the redirect was followed: its target got %d requests", n)
	}
}

// TestAlertSignatureCoversTheTimestamp: a receiver can refuse a replay,
// because the timestamp is signed with the body.
func TestAlertSignatureCoversTheTimestamp(t *testing.T) {
	t.Parallel()
	h := newHook(t, ok)
	sent := time.Now().Add(-time.Hour)
	w := &AlertWorker{Webhooks: alert.NewWebhooks([]string{h.URL}), Secret: []byte(hookSecret), Now: func() time.Time { return sent }}
	if _, err := w.Work(context.Background(), alert.Payload{WebhookID: alert.WebhookID(h.URL), Event: alert.Event{Event: alert.EventDrillFailed}}); err != nil {
		t.Fatal(err)
	}
	r := h.requests()[0]
	if r.timestamp != alert.Timestamp(sent) {
		t.Fatalf("%s = %q, want %q", alert.TimestampHeader, r.timestamp, alert.Timestamp(sent))
	}
	if err := alert.Verify([]byte(hookSecret), r.timestamp, r.signature, r.body, sent, 5*time.Minute); err != nil {
		t.Fatalf("the delivery does not verify when fresh: %v", err)
	}
	if err := alert.Verify([]byte(hookSecret), r.timestamp, r.signature, r.body, time.Now(), 5*time.Minute); !errors.Is(err, alert.ErrStale) {
		t.Fatalf("replayed an hour later: %v, want ErrStale", err)
	}
	// A replay with a fresh timestamp header does not match the signature.
	fresh := alert.Timestamp(time.Now())
	if err := alert.Verify([]byte(hookSecret), fresh, r.signature, r.body, time.Now(), 5*time.Minute); !errors.Is(err, alert.ErrBadSignature) {
		t.Fatalf("replayed with a new timestamp: %v, want ErrBadSignature", err)
	}
	if err := alert.Verify([]byte("other secret"), r.timestamp, r.signature, r.body, sent, 5*time.Minute); !errors.Is(err, alert.ErrBadSignature) {
		t.Fatalf("another secret: %v, want ErrBadSignature", err)
	}
}
