package policy

import (
	"fmt"
	"sort"
	"time"
)

// Retention is a target's grandfather-father-son policy. Each rule keeps,
// among the target's scheduled backups, the newest one of each of the last
// N periods that have a backup (as restic and borg count them: a period
// without backups does not use up a slot). Periods are UTC calendar days,
// ISO weeks (Monday to Sunday) and calendar months. A backup kept by any
// rule stays.
type Retention struct {
	KeepLast    int `json:"keep_last" yaml:"keep_last"`
	KeepDaily   int `json:"keep_daily" yaml:"keep_daily"`
	KeepWeekly  int `json:"keep_weekly" yaml:"keep_weekly"`
	KeepMonthly int `json:"keep_monthly" yaml:"keep_monthly"`
}

// Enabled reports whether the policy prunes anything at all.
func (r Retention) Enabled() bool {
	return r.KeepLast > 0 || r.KeepDaily > 0 || r.KeepWeekly > 0 || r.KeepMonthly > 0
}

// Validate refuses negative counts.
func (r Retention) Validate() error {
	if r.KeepLast < 0 || r.KeepDaily < 0 || r.KeepWeekly < 0 || r.KeepMonthly < 0 {
		return fmt.Errorf("retention counts must not be negative")
	}
	return nil
}

// PruneCandidate is one scheduled backup of the target.
type PruneCandidate struct {
	Name string    `json:"backup_name"`
	At   time.Time `json:"created_at"`
	// InUse marks a backup a queued or running restore or drill reads.
	InUse bool `json:"-"`
	// Unverified says why the manifest's signature did not verify (see
	// engine.Entry); empty for a trusted backup.
	Unverified string `json:"-"`
}

// PruneDecision says what happens to one backup, and why.
type PruneDecision struct {
	PruneCandidate
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons"`
}

// SelectPrune decides, for a target's scheduled backups, which the policy
// keeps and which go. The newest backup and any backup in use are always
// kept. With a policy that keeps nothing (no rule set), everything is
// kept. A backup whose manifest did not verify is kept, with the reason,
// and counts for no rule: it is neither deleted on an attacker's word nor
// allowed to push a good backup out. Decisions come newest first.
func SelectPrune(backups []PruneCandidate, p Retention) []PruneDecision {
	var trusted []PruneCandidate
	var untrusted []PruneDecision
	for _, b := range backups {
		if b.Unverified == "" {
			trusted = append(trusted, b)
			continue
		}
		untrusted = append(untrusted, PruneDecision{PruneCandidate: b, Keep: true,
			Reasons: []string{"manifest signature does not verify (" + b.Unverified + "): kept for a person to examine"}})
	}
	out := append(selectTrusted(trusted, p), untrusted...)
	sortNewestFirst(out)
	return out
}

// sortNewestFirst orders decisions newest first; ties (same instant) by
// name, so the result does not depend on the order the stores listed them
// in.
func sortNewestFirst(out []PruneDecision) {
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.After(out[j].At)
		}
		return out[i].Name > out[j].Name
	})
}

// selectTrusted is SelectPrune over backups whose manifests verified.
func selectTrusted(backups []PruneCandidate, p Retention) []PruneDecision {
	out := make([]PruneDecision, len(backups))
	for i, b := range backups {
		out[i] = PruneDecision{PruneCandidate: b}
	}
	sortNewestFirst(out)
	keep := func(i int, reason string) {
		out[i].Keep = true
		out[i].Reasons = append(out[i].Reasons, reason)
	}
	if !p.Enabled() {
		for i := range out {
			keep(i, "no retention policy")
		}
		return out
	}
	if len(out) > 0 {
		keep(0, "newest")
	}
	for i := 0; i < len(out) && i < p.KeepLast; i++ {
		keep(i, fmt.Sprintf("last %d", i+1))
	}
	periodRule(out, p.KeepDaily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }, keep)
	periodRule(out, p.KeepWeekly, "weekly", func(t time.Time) string {
		y, w := t.ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w)
	}, keep)
	periodRule(out, p.KeepMonthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }, keep)
	for i := range out {
		if out[i].InUse {
			keep(i, "in use by a queued or running restore or drill")
		}
		if !out[i].Keep {
			out[i].Reasons = append(out[i].Reasons, "not kept by any rule")
		}
	}
	return out
}

// periodRule keeps the newest backup of each of the n newest periods that
// have one. out is sorted newest first.
func periodRule(out []PruneDecision, n int, rule string, period func(time.Time) string, keep func(int, string)) {
	last := ""
	kept := 0
	for i := range out {
		if kept >= n {
			return
		}
		key := period(out[i].At.UTC())
		if key == last {
			continue
		}
		last = key
		kept++
		keep(i, rule+" "+key)
	}
}
