package scheduling

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/loop"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/policy"
)

// ManifestWatcher lists the stores and reports every backup whose manifest
// signature does not verify: a log line and one manifest.invalid alert per
// manifest and reason, once per scheduler process. Such a backup is not
// trusted anywhere (not pruned, not restored by default, not counted for
// the RPO), so without this report it would only be silently passed over.
// It runs only when the scheduler has a signing key.
type ManifestWatcher struct {
	Backups  policy.Lister
	Alerts   *alert.Alerter
	Interval time.Duration
	Log      *logrus.Entry

	reported map[string]bool
}

// Start checks at once and then every Interval, until ctx ends or the
// returned service is stopped.
func (w *ManifestWatcher) Start(ctx context.Context) *loop.Service {
	return loop.Start(ctx, w.Interval, w.Log, "manifest check failed", w.Check)
}

// Check lists every store once and reports the manifests not reported yet.
// It is not safe for concurrent use (the loop calls it from one goroutine).
func (w *ManifestWatcher) Check(ctx context.Context) error {
	entries, err := w.Backups.List(ctx, nil)
	if err != nil {
		return err
	}
	if w.reported == nil {
		w.reported = map[string]bool{}
	}
	for i := range entries {
		e := &entries[i]
		if e.Trusted() {
			continue
		}
		key := e.Name.String() + "\x00" + e.Unverified
		if w.reported[key] {
			continue
		}
		w.reported[key] = true
		w.Log.WithFields(logrus.Fields{"backup_name": e.Name.String(), "target": e.Target, "event": alert.EventManifestInvalid}).
			Warn("a manifest's signature does not verify: someone may have written to the store; the backup is kept but not used")
		w.Alerts.Emit(ctx, alert.Event{Event: alert.EventManifestInvalid, Target: e.Target, BackupName: e.Name.String(), Error: e.Unverified})
	}
	return nil
}
