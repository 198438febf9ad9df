package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"
)

// Alert events.
const (
	EventBackupFailed    = "backup.failed"
	EventBackupSucceeded = "backup.succeeded"
	EventRPOBreached     = "rpo.breached"
	EventRPORecovered    = "rpo.recovered"
	EventDrillFailed     = "drill.failed"
	EventPruneFailed     = "prune.failed"
)

// Event is what a webhook receives, as JSON. Text is one human line, so
// the body also works as a Slack incoming-webhook message.
type Event struct {
	Event      string    `json:"event"`
	Target     string    `json:"target,omitempty"`
	BackupName string    `json:"backup_name,omitempty"`
	TaskID     string    `json:"task_id,omitempty"`
	Error      string    `json:"error,omitempty"`
	At         time.Time `json:"at"`
	Text       string    `json:"text"`
}

// SignatureHeader carries sha256=<hex HMAC of the body> when a secret is set.
const SignatureHeader = "X-Pgbackup-Signature"

// Enqueuer puts tasks in the queue (an *asynq.Client).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Alerter sends events to webhooks. Each event becomes one alert:deliver
// task per URL, so delivery is retried with the queue's backoff and
// survives the sender's restart.
type Alerter struct {
	URLs      []string
	Secret    []byte
	OnSuccess bool
	Queue     Enqueuer
	Options   Options
	Log       *logrus.Entry
	// Client sends the webhooks; a 10-second timeout when nil.
	Client *http.Client
}

// CheckWebhookURL accepts http and https URLs with a host.
func CheckWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("webhook %q must be an http:// or https:// URL", s)
	}
	return nil
}

// Emit enqueues e for every webhook. Failing to enqueue is logged, not
// returned: an alert must never fail the work it reports on.
func (a *Alerter) Emit(ctx context.Context, e Event) {
	if a == nil || len(a.URLs) == 0 || (e.Event == EventBackupSucceeded && !a.OnSuccess) {
		return
	}
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	if e.Text == "" {
		e.Text = eventText(e)
	}
	for _, u := range a.URLs {
		task, err := NewTask(AlertPayload{URL: u, Event: e}, a.Options)
		if err == nil {
			_, err = a.Queue.EnqueueContext(context.WithoutCancel(ctx), task)
		}
		if err != nil && a.Log != nil {
			a.Log.WithError(err).WithField("event", e.Event).Error("could not enqueue an alert")
		}
	}
}

func eventText(e Event) string {
	what := map[string]string{
		EventBackupFailed: "backup failed", EventBackupSucceeded: "backup succeeded",
		EventRPOBreached: "newest good backup is older than the RPO", EventRPORecovered: "RPO met again",
		EventDrillFailed: "restore drill failed", EventPruneFailed: "pruning old backups failed",
	}[e.Event]
	s := fmt.Sprintf("pgbackup: %s", what)
	if e.Target != "" {
		s += " for target " + e.Target
	}
	if e.BackupName != "" {
		s += " (" + e.BackupName + ")"
	}
	if e.Error != "" {
		s += ": " + e.Error
	}
	return s
}

// AlertPayload is the payload of TypeAlertDeliver.
type AlertPayload struct {
	URL   string `json:"url"`
	Event Event  `json:"event"`
}

// Kind implements Payload.
func (AlertPayload) Kind() string { return TypeAlertDeliver }

func (p AlertPayload) logFields() logrus.Fields {
	return logrus.Fields{"event": p.Event.Event, "target": p.Event.Target}
}

// DeliveryOutcome is the result of an alert task.
type DeliveryOutcome struct {
	Status int `json:"status"`
}

// Sign returns the signature header value for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *Worker) deliverAlert(ctx context.Context, p AlertPayload) (DeliveryOutcome, error) {
	body, err := json.Marshal(p.Event)
	if err != nil {
		return DeliveryOutcome{}, fmt.Errorf("alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return DeliveryOutcome{}, fmt.Errorf("alert: %w: %w", errBadPayload, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pgbackup")
	if w.Alerts != nil && len(w.Alerts.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.Alerts.Secret, body))
	}
	client := http.DefaultClient
	if w.Alerts != nil && w.Alerts.Client != nil {
		client = w.Alerts.Client
	}
	resp, err := client.Do(req)
	if err != nil {
		return DeliveryOutcome{}, fmt.Errorf("alert to webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return DeliveryOutcome{Status: resp.StatusCode}, fmt.Errorf("alert to webhook: answered %d", resp.StatusCode)
	}
	return DeliveryOutcome{Status: resp.StatusCode}, nil
}
