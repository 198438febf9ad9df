package policy

import (
	"context"
	"fmt"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/wal"
)

// Lister lists complete backups (an *engine.Engine).
type Lister interface {
	List(ctx context.Context, from []string) ([]engine.Entry, error)
}

// PlanPrune decides which of target's scheduled backups its retention
// keeps; nothing is deleted. Adopted backups are not its to decide unless
// the target's AdoptedRetention is on. inUse names the backups queued or running
// tasks read (see tasks.BackupsInUse): they are kept.
func PlanPrune(ctx context.Context, l Lister, inUse map[string]bool, t Target) ([]PruneDecision, error) {
	entries, err := l.List(ctx, nil)
	if err != nil {
		return nil, err
	}
	var cands []PruneCandidate
	for _, e := range entries {
		if e.Adopted && !t.AdoptedRetention {
			continue // months of the old manager's history: kept unless the operator opts in
		}
		if _, scheduled := t.Owns(&e.Manifest); scheduled {
			cands = append(cands, PruneCandidate{Name: e.Name.String(), At: e.StartedAt, InUse: inUse[e.Name.String()], Unverified: e.Unverified})
		}
	}
	return SelectPrune(cands, t.Retention), nil
}

// Newest returns the target's newest complete backup whose manifest is
// trusted (see engine.Entry.Trusted): the one a drill restores and the RPO
// counts. A newer backup whose signature does not verify is passed over.
func Newest(ctx context.Context, l Lister, t Target) (*engine.Manifest, error) {
	entries, err := l.List(ctx, nil)
	if err != nil {
		return nil, err
	}
	newest := NewestOf(entries, t)
	if newest == nil {
		return nil, fmt.Errorf("%w: target %s has no backup", engine.ErrNotFound, t.Name)
	}
	return newest, nil
}

// NewestOf is the target's newest good backup among entries, nil when it
// has none: the one rule for "newest good" that drills, RPO and the API's
// target listing share. A backup whose signature does not verify is not
// good.
func NewestOf(entries []engine.Entry, t Target) *engine.Manifest {
	var newest *engine.Manifest
	for i := range entries {
		m := &entries[i].Manifest
		if !entries[i].Trusted() {
			continue
		}
		if owned, _ := t.Owns(m); owned && (newest == nil || m.FinishedAt.After(newest.FinishedAt)) {
			newest = m
		}
	}
	return newest
}

// PruneOutcome is the result of a prune task, and the API's dry run.
type PruneOutcome struct {
	Target    string          `json:"target"`
	Deleted   []string        `json:"deleted"`
	Decisions []PruneDecision `json:"decisions"`
	// BaseBackups are a pitr target's base backups as its WAL archive's
	// pitr_window decided (their deleted ones are in Deleted too), and
	// WAL what was pruned of the archive; absent for other targets.
	BaseBackups []PruneDecision  `json:"base_backups,omitempty"`
	WAL         *wal.PruneReport `json:"wal,omitempty"`
}
