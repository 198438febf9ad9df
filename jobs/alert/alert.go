// Package alert sends events (a failed backup, a breached RPO, ...) to
// webhooks through the queue: Emit enqueues one alert:deliver task per
// webhook, which a worker or a scheduler delivers (jobs/worker's
// AlertWorker), retried with the queue's backoff.
package alert

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/tasks"
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

// Alerter sends events to webhooks. Each event becomes one alert:deliver
// task per URL, so delivery is retried with the queue's backoff and
// survives the sender's restart.
type Alerter struct {
	URLs      []string
	Secret    []byte
	OnSuccess bool
	Queue     tasks.Enqueuer
	Options   tasks.Options
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
		task, err := tasks.NewTask(Payload{URL: u, Event: e}, a.Options)
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

// Payload is the payload of tasks.TypeAlertDeliver: one event for one
// webhook.
type Payload struct {
	URL   string `json:"url"`
	Event Event  `json:"event"`
}

// TaskType implements tasks.Payload.
func (Payload) TaskType() string { return tasks.TypeAlertDeliver }

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
