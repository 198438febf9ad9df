package jobs

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/engine"
)

// ScheduledPrefix starts the name of every scheduled backup.
const ScheduledPrefix = "autograph_scheduled_"

// slotPlaceholder marks the TaskID option that PreEnqueueFunc replaces.
const slotPlaceholder = "pgbackup-slot-placeholder"

// Schedule says when scheduled backups run.
type Schedule struct {
	// Spec is the cron expression or "@every <duration>" given to asynq.
	Spec string
	// Slot is the length of one slot. The moment a tick fires, truncated to
	// Slot, names the backup; every scheduler computes the same name for
	// the same slot, whenever it was started.
	Slot time.Duration
}

// ScheduleFromConfig turns BACKUP_SCHEDULE or BACKUP_INTERVAL_HOURS into a
// Schedule. Intervals that divide a day become cron expressions aligned to
// midnight UTC (every 6 hours runs at 00:00, 06:00, ...), so schedulers
// started at different times tick together.
func ScheduleFromConfig(cfg configs.Config) (Schedule, error) {
	if s := strings.TrimSpace(cfg.BackupSchedule); s != "" {
		if d, ok := strings.CutPrefix(s, "@every "); ok {
			dur, err := time.ParseDuration(strings.TrimSpace(d))
			if err != nil || dur < time.Second {
				return Schedule{}, fmt.Errorf("BACKUP_SCHEDULE: %q: want @every <duration> of at least 1s", s)
			}
			return Schedule{Spec: s, Slot: dur}, nil
		}
		// Cron expressions fire at whole minutes.
		return Schedule{Spec: s, Slot: time.Minute}, nil
	}
	h := cfg.BackupIntervalHours
	if h < 1 {
		return Schedule{}, fmt.Errorf("BACKUP_INTERVAL_HOURS: %d must be at least 1", h)
	}
	switch {
	case h == 24:
		return Schedule{Spec: "0 0 * * *", Slot: 24 * time.Hour}, nil
	case h < 24 && 24%h == 0:
		return Schedule{Spec: fmt.Sprintf("0 */%d * * *", h), Slot: time.Duration(h) * time.Hour}, nil
	default:
		return Schedule{Spec: fmt.Sprintf("@every %dh", h), Slot: time.Duration(h) * time.Hour}, nil
	}
}

// SlotName is the backup name for the slot containing t.
func (s Schedule) SlotName(t time.Time) string {
	return ScheduledPrefix + t.UTC().Truncate(s.Slot).Format("20060102_150405")
}

// NewScheduler returns an asynq scheduler that enqueues one custom-format
// backup per slot into stores.
//
// Several schedulers may run for availability, and asynq's scheduler has no
// lock: each would enqueue every tick. So each enqueue carries a TaskID equal
// to the slot's backup name; the first scheduler's enqueue wins and the
// others get asynq.ErrTaskIDConflict. The TaskID is swapped in by
// PreEnqueueFunc, which receives the entry's own option slice, because a
// registered entry's options are otherwise fixed for its lifetime. (A fixed
// TaskID would block every later run, asynq #492.)
func NewScheduler(cfg configs.Config, sched Schedule, stores []string, opts TaskOptions, log *logrus.Entry) (*asynq.Scheduler, error) {
	// Retention keeps the slot's TaskID reserved long after the task
	// completes, so a scheduler whose clock or tick lags cannot run it again.
	opts.Retention = max(opts.Retention, sched.Slot+time.Hour)
	task, err := NewBackupTask(BackupPayload{Format: string(engine.FormatCustom), Stores: stores, Scheduled: true}, opts)
	if err != nil {
		return nil, err
	}
	s := asynq.NewScheduler(RedisOpt(cfg), &asynq.SchedulerOpts{
		Location: time.UTC,
		Logger:   log,
		PreEnqueueFunc: func(t *asynq.Task, o []asynq.Option) {
			if t.Type() != TypeBackupCreate {
				return
			}
			for i, opt := range o {
				if opt.Type() == asynq.TaskIDOpt {
					o[i] = asynq.TaskID(sched.SlotName(time.Now()))
				}
			}
		},
		PostEnqueueFunc: func(info *asynq.TaskInfo, err error) {
			switch {
			case err == nil:
				log.WithFields(logrus.Fields{"task_id": info.ID, "backup_name": info.ID}).Info("scheduled backup enqueued")
			case errors.Is(err, asynq.ErrTaskIDConflict):
				log.Info("slot already enqueued by another scheduler")
			default:
				log.WithError(err).Error("could not enqueue scheduled backup")
			}
		},
	})
	// Enqueue applies Register's options after the task's own, and only
	// these are handed to PreEnqueueFunc: the placeholder must be here.
	if _, err := s.Register(sched.Spec, task, asynq.TaskID(slotPlaceholder)); err != nil {
		return nil, fmt.Errorf("scheduler: register %q: %w", sched.Spec, err)
	}
	return s, nil
}
