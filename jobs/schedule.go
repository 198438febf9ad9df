package jobs

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"
)

// ScheduledPrefix starts the name of every scheduled backup.
const ScheduledPrefix = "autograph_scheduled_"

// slotPlaceholder marks the TaskID option that PreEnqueueFunc replaces.
const slotPlaceholder = "pgbackup-slot-placeholder"

// Schedule says when scheduled backups run. Each run belongs to a slot,
// and the slot's start names the backup: every scheduler computes the same
// name for the same run, whenever it was started, which is what lets
// several schedulers run without producing duplicates.
type Schedule struct {
	// Spec is the cron expression or "@every <duration>" given to asynq.
	Spec string
	// Slot is the longest time between two runs. It bounds how long a
	// slot's task ID must stay reserved.
	Slot time.Duration

	// every is set for "@every" specs, whose runs asynq times from the
	// scheduler's start; slots are then aligned to the epoch instead.
	every time.Duration
	cron  cron.Schedule
}

// ParseSchedule checks a cron expression (five fields, or a descriptor such
// as @daily) or "@every <duration>", the forms asynq's scheduler accepts,
// and derives the slot length from it.
func ParseSchedule(spec string) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || dur < time.Second {
			return Schedule{}, fmt.Errorf("schedule %q: want @every <duration> of at least 1s", spec)
		}
		return Schedule{Spec: spec, Slot: dur, every: dur}, nil
	}
	c, err := cron.ParseStandard(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", spec, err)
	}
	slot := longestGap(c, time.Now().UTC())
	if slot <= 0 {
		return Schedule{}, fmt.Errorf("schedule %q never fires", spec)
	}
	return Schedule{Spec: spec, Slot: slot, cron: c}, nil
}

// longestGap samples the schedule's next runs and returns the longest time
// between two of them (0 if it never fires). 1,000 runs cover a year of an
// hourly schedule and leap years of a yearly one.
func longestGap(c cron.Schedule, from time.Time) time.Duration {
	var longest time.Duration
	prev := c.Next(from)
	if prev.IsZero() {
		return 0
	}
	for range 1000 {
		next := c.Next(prev)
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	return longest
}

// IntervalSchedule is the schedule for a backup every hours. Intervals
// that divide a day become cron expressions aligned to midnight UTC (every
// 6 hours runs at 00:00, 06:00, ...), so schedulers started at different
// times tick together.
func IntervalSchedule(hours int) (Schedule, error) {
	switch {
	case hours < 1:
		return Schedule{}, fmt.Errorf("interval of %d hours: must be at least 1", hours)
	case hours == 24:
		return ParseSchedule("0 0 * * *")
	case hours < 24 && 24%hours == 0:
		return ParseSchedule(fmt.Sprintf("0 */%d * * *", hours))
	default:
		return ParseSchedule(fmt.Sprintf("@every %dh", hours))
	}
}

// SlotStart is the start of the slot containing t: for cron schedules the
// latest run at or before t, for @every the start of t's epoch-aligned
// interval.
func (s Schedule) SlotStart(t time.Time) time.Time {
	t = t.UTC()
	if s.cron == nil {
		return t.Truncate(s.Slot)
	}
	run := s.cron.Next(t.Add(-s.Slot - time.Second))
	if run.After(t) {
		return t.Truncate(time.Minute) // cannot happen with a true longest gap
	}
	for next := s.cron.Next(run); !next.After(t); next = s.cron.Next(run) {
		run = next
	}
	return run
}

// SlotName is the default target's backup name for the slot containing t.
func (s Schedule) SlotName(t time.Time) string {
	return ScheduledPrefix + s.SlotStart(t).UTC().Format("20060102_150405")
}

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
func NewScheduler(redis asynq.RedisConnOpt, targets *TargetSet, opts Options, log *logrus.Entry) (*asynq.Scheduler, error) {
	slotID := func(t *asynq.Task) (string, bool) {
		var p struct {
			Target string `json:"target"`
		}
		if decodeJSON(t.Payload(), &p) != nil {
			return "", false
		}
		target, ok := targets.Get(p.Target)
		if !ok {
			return "", false
		}
		now := time.Now()
		switch {
		case (t.Type() == TypeBackupCreate || t.Type() == TypeBucketBackup) && target.Schedule != nil:
			return target.SlotName(now), true
		case t.Type() == TypeBackupDrill && target.DrillSchedule != nil:
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
			var p Payload = BackupPayload{Format: string(t.Format), Database: t.Database, Stores: t.Stores,
				Scheduled: true, Target: t.Name, IncludeGlobals: t.IncludeGlobals}
			if t.Kind == TargetBucket {
				p = BucketBackupPayload{Bucket: t.Bucket, Prefix: t.Prefix, Stores: t.Stores, Scheduled: true, Target: t.Name}
			}
			task, err := NewTask(p, o)
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
			task, err := NewTask(DrillPayload{Target: t.Name}, o)
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
