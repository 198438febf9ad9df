package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ScheduledPrefix starts the name of every scheduled backup.
const ScheduledPrefix = "autograph_scheduled_"

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

// Next is when the schedule fires next after now (zero without one). For
// @every schedules, which asynq times from the scheduler's start, it is the
// end of the current epoch-aligned interval: an estimate.
func (s *Schedule) Next(now time.Time) time.Time {
	if s == nil {
		return time.Time{}
	}
	if s.cron != nil {
		return s.cron.Next(now.UTC())
	}
	return s.SlotStart(now).Add(s.Slot)
}
