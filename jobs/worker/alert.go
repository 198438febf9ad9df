package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// AlertWorker runs tasks.TypeAlertDeliver: it posts one event to one
// webhook. Workers and schedulers both run it (see NewAlertServer).
type AlertWorker struct {
	// Webhooks are the configured URLs: a task names its webhook by id
	// and is delivered only to a URL found here (alert.Webhooks.URLFor).
	Webhooks alert.Webhooks
	// Secret, when set, signs every body (alert.SignatureHeader).
	Secret []byte
	// Client sends the webhooks; http.DefaultClient when nil. Redirects
	// are never followed, whatever its CheckRedirect says.
	Client *http.Client
	// Now is the clock of the timestamp header; time.Now when nil.
	Now func() time.Time
}

func (w *AlertWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[alert.Payload, alert.DeliveryOutcome](rt, w)
}

func (w *AlertWorker) logFields(p alert.Payload) logrus.Fields {
	return logrus.Fields{"event": p.Event.Event, "target": p.Event.Target, "webhook_id": p.WebhookID}
}

// Work delivers the event; any answer but 2xx, a redirect included, is
// retried. A webhook that is not configured fails at once.
func (w *AlertWorker) Work(ctx context.Context, p alert.Payload) (alert.DeliveryOutcome, error) {
	url, err := w.Webhooks.URLFor(p)
	if err != nil {
		return alert.DeliveryOutcome{}, err
	}
	body, err := json.Marshal(p.Event)
	if err != nil {
		return alert.DeliveryOutcome{}, fmt.Errorf("alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return alert.DeliveryOutcome{}, fmt.Errorf("alert: %w: %w", tasks.ErrBadPayload, err)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := alert.Timestamp(now())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pgbackup")
	req.Header.Set(alert.TimestampHeader, ts)
	if len(w.Secret) > 0 {
		req.Header.Set(alert.SignatureHeader, alert.Sign(w.Secret, ts, body))
	}
	resp, err := w.client().Do(req)
	if err != nil {
		return alert.DeliveryOutcome{}, fmt.Errorf("alert to webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return alert.DeliveryOutcome{Status: resp.StatusCode}, fmt.Errorf("alert to webhook: answered %d", resp.StatusCode)
	}
	return alert.DeliveryOutcome{Status: resp.StatusCode}, nil
}

// client is the configured client that never follows a redirect: a
// redirect would send the signed event to a URL nobody configured, so the
// 3xx itself is the answer, and a failure.
func (w *AlertWorker) client() *http.Client {
	c := *http.DefaultClient
	if w.Client != nil {
		c = *w.Client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}
