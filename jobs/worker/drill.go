package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// DrillEngine lists backups and restores one into a scratch database (an
// *engine.Engine).
type DrillEngine interface {
	List(ctx context.Context, from []string) ([]engine.Entry, error)
	Drill(ctx context.Context, name engine.Name, scratch pgtool.Ident, server *pgtool.Conn, progress engine.ProgressFunc) (*engine.DrillReport, error)
}

// DrillRecorder keeps drill results (a *coord.State).
type DrillRecorder interface {
	RecordDrill(ctx context.Context, r tasks.DrillResult) error
}

// DrillWorker runs tasks.TypeBackupDrill: it restores a target's newest
// backup into a scratch database, checks it and measures the recovery time.
type DrillWorker struct {
	Engine  DrillEngine
	Targets *policy.TargetSet
	State   DrillRecorder
	Log     *logrus.Entry
}

func (w *DrillWorker) mount(rt *Runtime) (string, asynq.Handler) {
	return handler[tasks.DrillPayload, tasks.DrillResult](rt, w)
}

func (w *DrillWorker) logFields(p tasks.DrillPayload) logrus.Fields {
	return logrus.Fields{"target": p.Target, "backup_name": p.BackupName}
}

func (w *DrillWorker) failureEvent(p tasks.DrillPayload) alert.Event {
	return alert.Event{Event: alert.EventDrillFailed, Target: p.Target, BackupName: p.BackupName}
}

// Work runs the drill and records its final outcome.
func (w *DrillWorker) Work(ctx context.Context, p tasks.DrillPayload) (tasks.DrillResult, error) {
	t, ok := w.Targets.Get(p.Target)
	if !ok {
		return tasks.DrillResult{}, fmt.Errorf("drill: %w %q", policy.ErrUnknownTarget, p.Target)
	}
	res := tasks.DrillResult{Target: t.Name, TaskID: taskIDOf(ctx), At: time.Now().UTC(), BackupName: p.BackupName}
	var err error
	if res.BackupName == "" {
		var m *engine.Manifest
		if m, err = policy.Newest(ctx, w.Engine, t); err == nil {
			res.BackupName = m.Name.String()
		}
	}
	if err == nil {
		var rep *engine.DrillReport
		var name engine.Name
		var scratch pgtool.Ident
		if name, scratch, err = drillNames(t.Name, res); err == nil {
			// On the target's own server, where its backups come from.
			rep, err = w.Engine.Drill(ctx, name, scratch, t.Server, progressOf(ctx))
		}
		if rep != nil {
			res.RTOSeconds = rep.RTO.Seconds()
			res.BackupAgeSeconds = res.At.Sub(rep.Manifest.FinishedAt).Seconds()
			res.Tables = rep.Tables
		}
	}
	res.Passed = err == nil
	if err != nil {
		res.Error = tasks.Classify(err)
	}
	// Every final outcome is recorded, a pass or a failure; a failure that
	// will be retried is not yet an outcome.
	if err == nil || finalAttempt(ctx, err) {
		if rerr := w.State.RecordDrill(context.WithoutCancel(ctx), res); rerr != nil {
			w.Log.WithError(rerr).Warn("could not record the drill result")
		}
	}
	return res, err
}

// drillNames parses the backup to drill and the scratch database made for
// it (from the target's name, which may not fit an identifier).
func drillNames(target string, res tasks.DrillResult) (engine.Name, pgtool.Ident, error) {
	name, err := parseBackupName("drill", res.BackupName)
	if err != nil {
		return engine.Name{}, pgtool.Ident{}, err
	}
	scratch, err := engine.ParseDatabase("pgbackup_drill_" + target + "_" + res.At.Format("20060102150405"))
	if err != nil {
		return engine.Name{}, pgtool.Ident{}, fmt.Errorf("drill %s: scratch %w", name, err)
	}
	return name, scratch, nil
}
