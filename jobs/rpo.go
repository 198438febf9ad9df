package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
)

// RPOWatcher checks, for every target with an RPO, that its newest good
// backup is younger than the RPO, and alerts once when that stops being
// true and once when it is true again. It runs in the scheduler, not the
// workers, so that a dead worker fleet is noticed too (a dead-man switch).
type RPOWatcher struct {
	Targets *TargetSet
	State   *State
	// Backups, when set, is listed for a target whose newest backup the
	// state does not know (a fresh Redis): the stores are the truth.
	Backups  Lister
	Alerts   *Alerter
	Interval time.Duration
	Log      *logrus.Entry
}

// Run checks every Interval until ctx ends.
func (w *RPOWatcher) Run(ctx context.Context) {
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		if err := w.Check(ctx); err != nil && ctx.Err() == nil {
			w.Log.WithError(err).Warn("rpo check failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Age returns how old target's newest good backup is at now, or, when it
// has none, how long the target has been watched without one.
func Age(st TargetStatus, now time.Time) time.Duration {
	if !st.LastSuccess.IsZero() {
		return now.Sub(st.LastSuccess)
	}
	if !st.FirstSeen.IsZero() {
		return now.Sub(st.FirstSeen)
	}
	return 0
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
			if m, err := newestOf(ctx, w.Backups, t); err == nil {
				st.LastSuccess = m.FinishedAt
				_ = w.State.NoteNewest(ctx, t.Name, m.Name.String(), m.FinishedAt)
			} else if !errors.Is(err, engine.ErrNotFound) {
				errs = append(errs, err)
				continue
			}
		}
		age := Age(st, time.Now())
		breached := age > t.RPO
		changed, err := w.State.SetRPOState(ctx, t.Name, breached)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !changed {
			continue
		}
		e := Event{Event: EventRPORecovered, Target: t.Name, BackupName: st.LastBackup}
		if breached {
			e.Event = EventRPOBreached
			e.Error = fmt.Sprintf("newest good backup is %s old, the RPO is %s", age.Round(time.Second), t.RPO)
		}
		w.Log.WithFields(logrus.Fields{"target": t.Name, "event": e.Event, "age_s": int(age.Seconds())}).Warn("rpo state changed")
		w.Alerts.Emit(ctx, e)
	}
	return errors.Join(errs...)
}
