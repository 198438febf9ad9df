package policy

import (
	"context"
	"fmt"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/wal"
)

// WALPruner deletes the WAL of an archive a restore no longer needs (a
// *wal.StoreArchive).
type WALPruner interface {
	Prune(ctx context.Context, before wal.Position, dryRun bool) (wal.PruneReport, error)
}

// PITRArchive is a pitr target's WAL archive as its retention sees it:
// the archive is its server's, shared by every pitr target on that
// server, so its base backups and WAL are kept for the longest
// pitr_window of those targets.
type PITRArchive struct {
	// Name is the archive's name (engine.BaseInfo.WALArchive).
	Name   string
	Window time.Duration
	WAL    WALPruner
}

// BaseCandidate is one base backup of a WAL archive.
type BaseCandidate struct {
	PruneCandidate
	// Start is where its WAL starts (StartLSN on its timeline); a restore
	// from it needs the archive from there on.
	Start wal.Position
}

// PITRPlan is what a WAL archive's pitr_window keeps.
type PITRPlan struct {
	// Decisions are the archive's base backups, newest first.
	Decisions []PruneDecision
	// Cut is the start of the oldest base backup kept whose manifest is
	// trusted: the WAL wholly before it is needed by no restore. The zero
	// Position (no trusted base backup) prunes no WAL.
	Cut wal.Position
}

// BasesOf returns the base backups of WAL archive archive among entries.
// inUse names the backups queued or running tasks read.
func BasesOf(entries []engine.Entry, archive string, inUse map[string]bool) []BaseCandidate {
	var out []BaseCandidate
	for i := range entries {
		m := &entries[i].Manifest
		if m.Content != engine.ContentBase || m.Base == nil || m.Base.WALArchive != archive {
			continue
		}
		c := BaseCandidate{PruneCandidate: PruneCandidate{Name: m.Name.String(), At: m.FinishedAt,
			InUse: inUse[m.Name.String()], Unverified: entries[i].Unverified}}
		lsn, err := wal.ParseLSN(m.Base.StartLSN)
		switch {
		case err != nil && c.Unverified == "":
			c.Unverified = fmt.Sprintf("start_lsn %q unreadable", m.Base.StartLSN)
		case err == nil:
			c.Start = wal.Position{Timeline: m.Base.Timeline, LSN: lsn}
		}
		out = append(out, c)
	}
	return out
}

// SelectPITR decides which base backups the window keeps at now: every
// one needed to reach any second of [now-window, now], that is those
// finished within the window and the newest finished at or before its
// start (a restore to the window's first second starts from it); and the
// WAL from the oldest of them on. A backup in use is kept, and keeps its
// WAL. A base backup whose manifest does not verify is kept with the
// reason and counts for nothing: it neither anchors the window nor holds
// WAL back, so a forged manifest can neither get a good base backup
// deleted nor stop the pruning. With no trusted base backup nothing is
// pruned.
func SelectPITR(bases []BaseCandidate, window time.Duration, now time.Time) PITRPlan {
	start := now.Add(-window)
	var anchor *time.Time
	for _, b := range bases {
		if b.Unverified == "" && !b.At.After(start) && (anchor == nil || b.At.After(*anchor)) {
			anchor = &b.At
		}
	}
	var plan PITRPlan
	for _, b := range bases {
		d := PruneDecision{PruneCandidate: b.PruneCandidate}
		keep := func(reason string) { d.Keep, d.Reasons = true, append(d.Reasons, reason) }
		switch {
		case b.Unverified != "":
			keep("manifest signature does not verify (" + b.Unverified + "): kept for a person to examine")
		case b.At.After(start):
			keep("finished within the pitr_window (after " + start.UTC().Format(time.RFC3339) + ")")
		case anchor != nil && b.At.Equal(*anchor):
			keep("newest finished at or before the pitr_window's start: a restore to the window's first seconds starts from it")
		}
		if b.InUse {
			keep("in use by a queued or running task")
		}
		if !d.Keep {
			d.Reasons = append(d.Reasons, "older than the newest base backup before the pitr_window")
		}
		if d.Keep && b.Unverified == "" && (plan.Cut == (wal.Position{}) || b.Start.LSN < plan.Cut.LSN) {
			plan.Cut = b.Start
		}
		plan.Decisions = append(plan.Decisions, d)
	}
	sortNewestFirst(plan.Decisions)
	return plan
}

// PlanPITR lists the backups and decides, for archive a, which base
// backups its window keeps now and where its WAL is cut; nothing is
// deleted.
func PlanPITR(ctx context.Context, l Lister, inUse map[string]bool, a PITRArchive, now time.Time) (PITRPlan, error) {
	entries, err := l.List(ctx, nil)
	if err != nil {
		return PITRPlan{}, err
	}
	return SelectPITR(BasesOf(entries, a.Name, inUse), a.Window, now), nil
}

// OldestBase is the oldest base backup of archive among entries whose
// manifest is trusted and, when covered is given, whose WAL the archive
// holds (covered(start, stop)); nil when there is none. It bounds what
// the WAL watcher checks and the oldest second a restore can reach.
func OldestBase(entries []engine.Entry, archive string, covered func(start, stop wal.Position) bool) *engine.Manifest {
	var oldest *engine.Manifest
	for i := range entries {
		m := &entries[i].Manifest
		if !entries[i].Trusted() || m.Content != engine.ContentBase || m.Base == nil || m.Base.WALArchive != archive {
			continue
		}
		start, stop, ok := BaseRange(m)
		if !ok || (covered != nil && !covered(start, stop)) {
			continue
		}
		if oldest == nil || m.FinishedAt.Before(oldest.FinishedAt) {
			oldest = m
		}
	}
	return oldest
}

// NewestBase is the newest trusted base backup of archive among entries;
// nil when there is none.
func NewestBase(entries []engine.Entry, archive string) *engine.Manifest {
	var newest *engine.Manifest
	for i := range entries {
		m := &entries[i].Manifest
		if !entries[i].Trusted() || m.Content != engine.ContentBase || m.Base == nil || m.Base.WALArchive != archive {
			continue
		}
		if _, _, ok := BaseRange(m); ok && (newest == nil || m.FinishedAt.After(newest.FinishedAt)) {
			newest = m
		}
	}
	return newest
}

// BaseRange is where base backup m's WAL starts and stops; ok is false
// when its manifest's LSNs do not parse.
func BaseRange(m *engine.Manifest) (start, stop wal.Position, ok bool) {
	if m.Base == nil {
		return start, stop, false
	}
	a, err1 := wal.ParseLSN(m.Base.StartLSN)
	b, err2 := wal.ParseLSN(m.Base.StopLSN)
	if err1 != nil || err2 != nil {
		return start, stop, false
	}
	return wal.Position{Timeline: m.Base.Timeline, LSN: a}, wal.Position{Timeline: m.Base.Timeline, LSN: b}, true
}
