package scheduling

import (
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
)

type fixedList []engine.Entry

func (f fixedList) List(context.Context, []string) ([]engine.Entry, error) { return f, nil }

// recordingQueue keeps the alert events enqueued.
type recordingQueue struct{ events []alert.Event }

func (q *recordingQueue) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	var p alert.Payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return nil, err
	}
	q.events = append(q.events, p.Event)
	return &asynq.TaskInfo{}, nil
}

// TestManifestWatcherAlertsOncePerInvalidManifest: a manifest that does not
// verify becomes one manifest.invalid alert naming it, not one per check;
// verified manifests raise nothing.
func TestManifestWatcherAlertsOncePerInvalidManifest(t *testing.T) {
	t.Parallel()
	q := &recordingQueue{}
	l := logrus.New()
	l.SetOutput(io.Discard)
	w := &ManifestWatcher{
		Backups: fixedList{
			{Manifest: engine.Manifest{Name: engine.MustParseName("good")}, Verified: true},
			{Manifest: engine.Manifest{Name: engine.MustParseName("forged"), Target: "app"}, Unverified: "in minio: bad signature"},
		},
		Alerts: &alert.Alerter{URLs: []string{"http://hook.example/x"}, Queue: q},
		Log:    logrus.NewEntry(l),
	}
	for range 3 {
		if err := w.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(q.events) != 1 {
		t.Fatalf("%d alerts after three checks, want one: %+v", len(q.events), q.events)
	}
	if e := q.events[0]; e.Event != alert.EventManifestInvalid || e.BackupName != "forged" || e.Target != "app" || e.Error == "" {
		t.Errorf("alert %+v, want manifest.invalid for forged of target app with the reason", e)
	}
}
