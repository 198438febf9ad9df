// Package scheduling runs the scheduler's periodic work: asynq's scheduler
// enqueueing each target's backups and drills once per slot
// (scheduler.go), and the RPO watcher (rpo.go). What a slot is and what it
// is named is policy (jobs/policy); this package puts it on the queue.
package scheduling

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// slotPlaceholder marks the TaskID option that PreEnqueueFunc replaces.
const slotPlaceholder = "pgbackup-slot-placeholder"

// NewScheduler returns an asynq scheduler that enqueues, for every target
// with a schedule, one backup per slot (in the target's format, to its
// stores), one restore drill per slot of its drill schedule, and one base
// backup per slot of its base backup schedule (pitr targets).
//
// Several schedulers may run for availability, and asynq's scheduler has no
// lock: each would enqueue every tick (asynq #1013). So each enqueue carries
// a TaskID equal to the slot's backup name (or drill or base backup name);
// the first scheduler's enqueue wins and the others get
// asynq.ErrTaskIDConflict.
//
// asynq v0.26 fixes a registered entry's options for its lifetime and
// offers no supported way to vary them per run; the only hook is
// PreEnqueueFunc, which receives the entry's own option slice, so the
// TaskID is swapped in there. (A fixed TaskID would block every later run,
// asynq #492.) The e2e test with two schedulers pins this behaviour.
func NewScheduler(redis asynq.RedisConnOpt, targets *policy.TargetSet, opts tasks.Options, log *logrus.Entry) (*asynq.Scheduler, error) {
	s := asynq.NewScheduler(redis, &asynq.SchedulerOpts{
		Location: time.UTC,
		Logger:   log,
		PreEnqueueFunc: func(t *asynq.Task, o []asynq.Option) {
			id, ok := slotTaskID(targets, t, time.Now())
			if !ok {
				return
			}
			for i, opt := range o {
				if opt.Type() == asynq.TaskIDOpt {
					o[i] = asynq.TaskID(id)
				}
			}
		},
		PostEnqueueFunc: func(info *asynq.TaskInfo, err error) {
			switch {
			case err == nil:
				log.WithFields(logrus.Fields{"task_id": info.ID, "task_type": info.Type}).Info("scheduled task enqueued")
			case errors.Is(err, asynq.ErrTaskIDConflict):
				log.Info("slot already enqueued by another scheduler")
			default:
				log.WithError(err).Error("could not enqueue a scheduled task")
			}
		},
	})
	list, err := entries(targets, opts)
	if err != nil {
		return nil, err
	}
	for _, e := range list {
		// Enqueue applies Register's options after the task's own, and
		// only these are handed to PreEnqueueFunc: the placeholder must
		// be here.
		if _, err := s.Register(e.spec, e.task, asynq.TaskID(slotPlaceholder)); err != nil {
			return nil, fmt.Errorf("scheduler: target %s: register %s %q: %w", e.target, e.task.Type(), e.spec, err)
		}
	}
	return s, nil
}

// slotTaskID is the ID of the task t of the slot containing now: the
// slot's backup name for a backup (or base backup), the drill's name for
// a drill. ok is false for a task that no schedule of its target makes.
func slotTaskID(targets *policy.TargetSet, t *asynq.Task, now time.Time) (id string, ok bool) {
	var p struct {
		Target string `json:"target"`
	}
	if json.Unmarshal(t.Payload(), &p) != nil {
		return "", false
	}
	target, ok := targets.Get(p.Target)
	if !ok {
		return "", false
	}
	switch {
	case (t.Type() == tasks.TypeBackupCreate || t.Type() == tasks.TypeBucketBackup) && target.Schedule != nil:
		return target.SlotName(now), true
	case t.Type() == tasks.TypeBackupDrill && target.DrillSchedule != nil:
		return target.DrillTaskID(now), true
	case t.Type() == tasks.TypeBaseBackup && target.BaseBackupSchedule != nil:
		return target.BaseBackupTaskID(now), true
	}
	return "", false
}

// entry is one periodic task of one target.
type entry struct {
	target, spec string
	task         *asynq.Task
}

// entries are the periodic tasks of every target: its backups, drills
// and base backups, each on its schedule. Each task's retention keeps
// its slot's TaskID reserved long after it completes, so that a
// scheduler whose clock or tick lags cannot run the slot again.
func entries(targets *policy.TargetSet, opts tasks.Options) ([]entry, error) {
	var out []entry
	add := func(t policy.Target, sched *policy.Schedule, p tasks.Payload) error {
		if sched == nil {
			return nil
		}
		o := opts
		o.Retention = max(opts.Retention, sched.Slot+time.Hour)
		task, err := tasks.NewTask(p, o)
		if err != nil {
			return err
		}
		out = append(out, entry{target: t.Name, spec: sched.Spec, task: task})
		return nil
	}
	for _, t := range targets.All() {
		var backup tasks.Payload = tasks.BackupPayload{Format: t.Format.String(), Database: t.Database, Stores: t.Stores,
			Scheduled: true, Target: t.Name, IncludeGlobals: t.IncludeGlobals}
		if t.Source == policy.SourceBucket {
			backup = tasks.BucketBackupPayload{Bucket: t.Bucket, Prefix: t.Prefix, Stores: t.Stores, Scheduled: true, Target: t.Name}
		}
		// The base backup's name is left to the worker, which takes it
		// from the task's ID (the slot's name), as scheduled backups do.
		err := errors.Join(add(t, t.Schedule, backup), add(t, t.DrillSchedule, tasks.DrillPayload{Target: t.Name}),
			add(t, t.BaseBackupSchedule, tasks.BaseBackupPayload{Target: t.Name, Scheduled: true}))
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
