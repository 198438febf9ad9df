package wal

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/autograph/pgbackup/store"
)

// PruneReport says what Prune deleted, or in a dry run would delete, over
// every store (an object in two stores counts twice).
type PruneReport struct {
	// Timeline and BeforeLSN are the cut (PostgreSQL's notation): WAL
	// wholly before BeforeLSN on Timeline and the timelines before it was
	// pruned; empty when only chunks of complete segments were.
	Timeline  uint32 `json:"timeline"`
	BeforeLSN string `json:"before_lsn"`
	// Objects = Segments + Chunks; Bytes is their stored size.
	Objects  int   `json:"objects"`
	Segments int   `json:"segments"`
	Chunks   int   `json:"chunks"`
	Bytes    int64 `json:"bytes"`
	DryRun   bool  `json:"dry_run"`
}

// prunable is one object Prune deletes.
type prunable struct {
	info store.ObjectInfo
	pk   parsedKey
}

// Prune deletes, in every store, the WAL a restore no longer needs:
//
//   - every complete segment and chunk of timeline before.Timeline or an
//     earlier one that ends at or before before.LSN (the zero Position
//     cuts nothing);
//   - every chunk of a segment the same store holds complete, with a
//     header that verifies (chunks become prunable once their segment is
//     complete).
//
// Timeline history files are never pruned: a restore onto any later
// timeline reads them. Objects are deleted oldest first, so an
// interrupted prune leaves an archive that starts later, never one with a
// hole in the middle. With dryRun nothing is deleted and the report says
// what would be.
func (a *StoreArchive) Prune(ctx context.Context, before Position, dryRun bool) (PruneReport, error) {
	r := PruneReport{DryRun: dryRun}
	// Keys name segments by the archive's segment size, learnt from the
	// objects' signed headers.
	if err := a.learn(ctx); err != nil {
		return r, err
	}
	if before.LSN > 0 {
		r.Timeline, r.BeforeLSN = before.Timeline, before.LSN.String()
	}
	for _, st := range a.stores {
		doomed, err := a.prunable(ctx, st, before)
		if err != nil {
			return r, err
		}
		for _, p := range doomed {
			if !dryRun {
				if err := st.Delete(ctx, p.info.Key); err != nil && !store.IsNotFound(err) {
					return r, fmt.Errorf("wal prune %s: delete %s from %s: %w", a.target, p.info.Key, st.Name(), err)
				}
				a.mu.Lock()
				delete(a.headers, st.Name()+"\x00"+p.info.Key)
				a.mu.Unlock()
			}
			r.Objects++
			r.Bytes += p.info.Size
			if p.pk.kind == kindSegment {
				r.Segments++
			} else {
				r.Chunks++
			}
		}
	}
	return r, nil
}

// prunable lists what Prune deletes in st, oldest first.
func (a *StoreArchive) prunable(ctx context.Context, st store.Store, before Position) ([]prunable, error) {
	objs, err := st.List(ctx, Root(a.target))
	if err != nil {
		return nil, fmt.Errorf("wal prune %s: list %s: %w", a.target, st.Name(), err)
	}
	type segID struct {
		tli   uint32
		segno uint64
	}
	var all []prunable
	complete := map[segID]prunable{}
	chunked := map[segID]bool{}
	for _, o := range objs {
		pk, ok := parseKey(a.target, o.Key, a.seg())
		if !ok || pk.kind == kindHistory {
			continue
		}
		all = append(all, prunable{info: o, pk: pk})
		id := segID{pk.tli, pk.segno}
		if pk.kind == kindSegment {
			complete[id] = prunable{info: o, pk: pk}
		} else {
			chunked[id] = true
		}
	}
	// A chunk goes only when its segment's object in this store verifies
	// (its signed header): a complete object that does not is a gap its
	// chunks may still fill.
	whole := map[segID]bool{}
	for id := range chunked {
		p, ok := complete[id]
		if !ok {
			continue
		}
		if _, err := a.header(ctx, st, p.info, p.pk); err == nil {
			whole[id] = true
		} else if !isCorrupt(err) && !store.IsNotFound(err) {
			return nil, fmt.Errorf("wal prune %s: %w", a.target, err)
		}
	}
	var out []prunable
	for _, p := range all {
		cut := before.LSN > 0 && p.pk.tli <= before.Timeline && p.pk.end <= before.LSN
		redundant := p.pk.kind == kindPartial && whole[segID{p.pk.tli, p.pk.segno}]
		if cut || redundant {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(x, y prunable) int {
		if c := cmp.Compare(x.pk.start, y.pk.start); c != 0 {
			return c
		}
		return cmp.Compare(x.pk.tli, y.pk.tli)
	})
	return out, nil
}
