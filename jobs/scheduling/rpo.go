package scheduling

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/loop"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
)

// RPOWatcher checks, for every target with an RPO, that its newest good
// backup is younger than the RPO (for a pitr target, that its WAL
// archive's archived_through is, when that is later: see
// coord.TargetStatus.RecoveryPoint), and alerts once when that stops being
// true and once when it is true again. It runs in the scheduler, not the
// workers, so that a dead worker fleet is noticed too (a dead-man switch).
type RPOWatcher struct {
	Targets *policy.TargetSet
	State   *coord.State
	// Backups, when set, is listed for a target whose newest backup the
	// state does not know (a fresh Redis): the stores are the truth.
	Backups  policy.Lister
	Alerts   *alert.Alerter
	Interval time.Duration
	Log      *logrus.Entry
}

// Start checks at once and then every Interval, until ctx ends or the
// returned service is stopped.
func (w *RPOWatcher) Start(ctx context.Context) *loop.Service {
	return loop.Start(ctx, w.Interval, w.Log, "rpo check failed", w.Check)
}

// Check looks at every watched target once.
func (w *RPOWatcher) Check(ctx context.Context) error {
	var errs []error
	for _, t := range w.Targets.All() {
		if t.RPO <= 0 {
			continue
		}
		st, err := w.State.Status(ctx, t.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.LastSuccess.IsZero() && w.Backups != nil {
			if m, err := policy.Newest(ctx, w.Backups, t); err == nil {
				st.LastSuccess = m.FinishedAt
				_ = w.State.NoteNewest(ctx, t.Name, m.Name.String(), m.FinishedAt)
			} else if !errors.Is(err, engine.ErrNotFound) {
				errs = append(errs, err)
				continue
			}
		}
		age := st.Age(time.Now())
		breached := age > t.RPO
		changed, err := w.State.SetRPOState(ctx, t.Name, breached)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !changed {
			continue
		}
		e := alert.Event{Event: alert.EventRPORecovered, Target: t.Name, BackupName: st.LastBackup}
		if breached {
			e.Event = alert.EventRPOBreached
			e.Error = fmt.Sprintf("newest good backup is %s old, the RPO is %s", age.Round(time.Second), t.RPO)
			if st.WAL != nil && st.RecoveryPoint().Equal(st.WAL.ArchivedThrough) {
				e.Error = fmt.Sprintf("WAL archived through %s, %s ago, the RPO is %s", st.WAL.ArchivedThrough.Format(time.RFC3339),
					age.Round(time.Second), t.RPO)
			}
		}
		w.Log.WithFields(logrus.Fields{"target": t.Name, "event": e.Event, "age_s": int(age.Seconds())}).Warn("rpo state changed")
		w.Alerts.Emit(ctx, e)
	}
	return errors.Join(errs...)
}
