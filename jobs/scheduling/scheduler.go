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
// stores), and one restore drill per slot of its drill schedule.
//
// Several schedulers may run for availability, and asynq's scheduler has no
// lock: each would enqueue every tick (asynq #1013). So each enqueue carries
// a TaskID equal to the slot's backup name (or drill name); the first
// scheduler's enqueue wins and the others get asynq.ErrTaskIDConflict.
//
// asynq v0.26 fixes a registered entry's options for its lifetime and
// offers no supported way to vary them per run; the only hook is
// PreEnqueueFunc, which receives the entry's own option slice, so the
// TaskID is swapped in there. (A fixed TaskID would block every later run,
// asynq #492.) The e2e test with two schedulers pins this behaviour.
func NewScheduler(redis asynq.RedisConnOpt, targets *policy.TargetSet, opts tasks.Options, log *logrus.Entry) (*asynq.Scheduler, error) {
	slotID := func(t *asynq.Task) (string, bool) {
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
		now := time.Now()
		switch {
		case (t.Type() == tasks.TypeBackupCreate || t.Type() == tasks.TypeBucketBackup) && target.Schedule != nil:
			return target.SlotName(now), true
		case t.Type() == tasks.TypeBackupDrill && target.DrillSchedule != nil:
			return target.DrillTaskID(now), true
		}
		return "", false
	}
	s := asynq.NewScheduler(redis, &asynq.SchedulerOpts{
		Location: time.UTC,
		Logger:   log,
		PreEnqueueFunc: func(t *asynq.Task, o []asynq.Option) {
			id, ok := slotID(t)
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
	for _, t := range targets.All() {
		if t.Schedule != nil {
			// Retention keeps the slot's TaskID reserved long after the task
			// completes, so a scheduler whose clock or tick lags cannot run
			// it again.
			o := opts
			o.Retention = max(opts.Retention, t.Schedule.Slot+time.Hour)
			var p tasks.Payload = tasks.BackupPayload{Format: t.Format.String(), Database: t.Database, Stores: t.Stores,
				Scheduled: true, Target: t.Name, IncludeGlobals: t.IncludeGlobals}
			if t.Source == policy.SourceBucket {
				p = tasks.BucketBackupPayload{Bucket: t.Bucket, Prefix: t.Prefix, Stores: t.Stores, Scheduled: true, Target: t.Name}
			}
			task, err := tasks.NewTask(p, o)
			if err != nil {
				return nil, err
			}
			// Enqueue applies Register's options after the task's own, and
			// only these are handed to PreEnqueueFunc: the placeholder must
			// be here.
			if _, err := s.Register(t.Schedule.Spec, task, asynq.TaskID(slotPlaceholder)); err != nil {
				return nil, fmt.Errorf("scheduler: target %s: register %q: %w", t.Name, t.Schedule.Spec, err)
			}
		}
		if t.DrillSchedule != nil {
			o := opts
			o.Retention = max(opts.Retention, t.DrillSchedule.Slot+time.Hour)
			task, err := tasks.NewTask(tasks.DrillPayload{Target: t.Name}, o)
			if err != nil {
				return nil, err
			}
			if _, err := s.Register(t.DrillSchedule.Spec, task, asynq.TaskID(slotPlaceholder)); err != nil {
				return nil, fmt.Errorf("scheduler: target %s: register drill %q: %w", t.Name, t.DrillSchedule.Spec, err)
			}
		}
	}
	return s, nil
}
