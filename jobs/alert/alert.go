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
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
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
	// EventManifestInvalid: a listed manifest's signature does not verify
	// (a forged or altered backup, or one signed with a key no longer
	// configured). The backup is kept and never used without a person.
	EventManifestInvalid = "manifest.invalid"
	// EventWALGap: a pitr archive misses WAL, or holds WAL that does not
	// verify, between its oldest WAL and its end (Error: the store,
	// timeline and LSN range). EventWALGapResolved: that gap is gone.
	EventWALGap         = "wal.gap"
	EventWALGapResolved = "wal.gap.resolved"
	// EventWALStalled: a pitr archive's end has not moved although its
	// server has written WAL past it.
	EventWALStalled = "wal.stalled"
	// EventWALSlotLag: the server keeps more WAL for the archive's
	// replication slot than WAL_SLOT_LAG_ALERT (Error: the lag, the
	// threshold and the slot's wal_status), before the server invalidates
	// it. EventWALSlotLagResolved: the lag is back under the threshold.
	EventWALSlotLag         = "wal.slot_lag"
	EventWALSlotLagResolved = "wal.slot_lag.resolved"
	// EventWALSlotLost: the server invalidated the archive's slot
	// (wal_status lost: it kept more than max_slot_wal_keep_size), or the
	// slot is gone although the archive holds WAL. The archive has a gap
	// from its end; Error says what to do.
	EventWALSlotLost = "wal.slot_lost"
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

// Delivery headers. TimestampHeader carries the Unix time (seconds) of the
// attempt; SignatureHeader, when a secret is set, carries
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)), so a
// receiver can refuse a replayed request whose timestamp is old (see Verify).
const (
	SignatureHeader = "X-Pgbackup-Signature"
	TimestampHeader = "X-Pgbackup-Timestamp"
)

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
		task, err := tasks.NewTask(Payload{WebhookID: WebhookID(u), Event: e}, a.Options)
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
		EventManifestInvalid: "a backup's manifest signature does not verify",
		EventWALGap:          "the WAL archive has a gap", EventWALGapResolved: "a WAL archive gap is gone",
		EventWALStalled: "the WAL archiver has stalled",
		EventWALSlotLag: "the server keeps a lot of WAL for the archive's replication slot", EventWALSlotLagResolved: "the replication slot's lag is back under the threshold",
		EventWALSlotLost: "the archive's replication slot is lost",
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
// webhook, named by its WebhookID. The URL itself never travels in the
// queue: whoever can write to Redis must not be able to choose where the
// workers send signed requests.
type Payload struct {
	WebhookID string `json:"webhook_id,omitempty"`
	// URL is only read from tasks queued before webhook ids: such a task
	// is delivered only if its URL is still configured.
	URL   string `json:"url,omitempty"`
	Event Event  `json:"event"`
}

// WebhookID names a webhook URL in task payloads: the first 16 hex digits
// of its SHA-256. It is stable across restarts and reorderings of
// ALERT_WEBHOOK_URLS, and reveals nothing of the URL.
func WebhookID(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

// Webhooks are the configured webhook URLs by WebhookID.
type Webhooks map[string]string

// NewWebhooks indexes urls by WebhookID.
func NewWebhooks(urls []string) Webhooks {
	w := Webhooks{}
	for _, u := range urls {
		w[WebhookID(u)] = u
	}
	return w
}

// Webhooks are the alerter's configured URLs, for the delivering worker.
func (a *Alerter) Webhooks() Webhooks { return NewWebhooks(a.URLs) }

// URLFor is where p is to be delivered: the configured URL of its webhook
// id or, for a task queued before webhook ids, its URL if that is still
// configured. Anything else wraps tasks.ErrUnknownWebhook, which is not
// retried.
func (w Webhooks) URLFor(p Payload) (string, error) {
	id := p.WebhookID
	if id == "" && p.URL != "" {
		id = WebhookID(p.URL)
	}
	if id == "" {
		return "", fmt.Errorf("alert: %w: no webhook id", tasks.ErrBadPayload)
	}
	if u, ok := w[id]; ok {
		return u, nil
	}
	return "", fmt.Errorf("alert: webhook %s: %w (not in ALERT_WEBHOOK_URLS)", id, tasks.ErrUnknownWebhook)
}

// TaskType implements tasks.Payload.
func (Payload) TaskType() string { return tasks.TypeAlertDeliver }

// DeliveryOutcome is the result of an alert task.
type DeliveryOutcome struct {
	Status int `json:"status"`
}

// Sign returns the SignatureHeader value for body sent with timestamp (the
// TimestampHeader value).
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Timestamp is the TimestampHeader value for t.
func Timestamp(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp too far from now (a replay?)")
)

// Verify is what a receiver written in Go does with a delivery: the
// signature must match the timestamp and body, and the timestamp must be
// within maxAge of now, so a captured request cannot be replayed later.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, timestamp, body))) {
		return ErrBadSignature
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not a Unix time", ErrStale, timestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
		return fmt.Errorf("%w: %s", ErrStale, d.Round(time.Second))
	}
	return nil
}
