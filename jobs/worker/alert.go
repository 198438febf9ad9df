package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// AlertWorker runs tasks.TypeAlertDeliver: it posts one event to one
// webhook. Workers and schedulers both run it (see NewAlertServer).
type AlertWorker struct {
	// Secret, when set, signs every body (alert.SignatureHeader).
	Secret []byte
	// Client sends the webhooks; http.DefaultClient when nil.
	Client *http.Client
}

func (w *AlertWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[alert.Payload, alert.DeliveryOutcome](rt, w)
}

func (w *AlertWorker) logFields(p alert.Payload) logrus.Fields {
	return logrus.Fields{"event": p.Event.Event, "target": p.Event.Target}
}

// Work delivers the event; any answer but 2xx is retried.
func (w *AlertWorker) Work(ctx context.Context, p alert.Payload) (alert.DeliveryOutcome, error) {
	body, err := json.Marshal(p.Event)
	if err != nil {
		return alert.DeliveryOutcome{}, fmt.Errorf("alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return alert.DeliveryOutcome{}, fmt.Errorf("alert: %w: %w", tasks.ErrBadPayload, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pgbackup")
	if len(w.Secret) > 0 {
		req.Header.Set(alert.SignatureHeader, alert.Sign(w.Secret, body))
	}
	client := http.DefaultClient
	if w.Client != nil {
		client = w.Client
	}
	resp, err := client.Do(req)
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
