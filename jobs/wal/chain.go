package wal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/autograph/pgbackup/store"
)

// Gap is a range of WAL the chain needs and a store does not hold in a
// form that verifies: [Start, End) of Timeline.
type Gap struct {
	Store    string `json:"store"`
	Timeline uint32 `json:"timeline"`
	Start    LSN    `json:"start"`
	End      LSN    `json:"end"`
	// Reason says why: nothing stored there, or the object at Key does
	// not verify.
	Reason string `json:"reason"`
	Key    string `json:"key,omitempty"`
}

func (g Gap) String() string {
	s := fmt.Sprintf("%s: timeline %d %s-%s: %s", g.Store, g.Timeline, g.Start, g.End, g.Reason)
	if g.Key != "" {
		s += " (" + g.Key + ")"
	}
	return s
}

// Chain is one store's view of the archive, from its oldest WAL to its end.
type Chain struct {
	Store string `json:"store"`
	// Start is the oldest archived position, End where the WAL stops
	// (past any gap: the chain is walked to its last byte).
	Start     Position `json:"start"`
	End       Position `json:"end"`
	Segments  int      `json:"segments"`
	Chunks    int      `json:"chunks"`
	Histories int      `json:"histories"`
	Gaps      []Gap    `json:"gaps,omitempty"`
}

// Contiguous is where the chain ends counting from its start: the first
// gap's start, or End.
func (c Chain) Contiguous() Position {
	for _, g := range c.Gaps {
		// A history file that does not verify has no range of its own:
		// the walk then stays on the parent, where its gaps show.
		if g.End > g.Start {
			return Position{Timeline: g.Timeline, LSN: g.Start}
		}
	}
	return c.End
}

// entry is one object of a listing with what its key says and, once
// checked, whether it verified.
type entry struct {
	info store.ObjectInfo
	pk   parsedKey
	h    header
	err  error
}

// inventory lists st's archive and checks each object's header (and, with
// content, its payload) concurrently.
func (a *StoreArchive) inventory(ctx context.Context, st store.Store, content bool) ([]entry, error) {
	objs, err := st.List(ctx, Root(a.target))
	if err != nil {
		return nil, fmt.Errorf("wal list %s in %s: %w", a.target, st.Name(), err)
	}
	var out []entry
	for _, o := range objs {
		if pk, ok := parseKey(a.target, o.Key, a.seg()); ok {
			out = append(out, entry{info: o, pk: pk})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	// Headers are small; whole objects are up to a segment each, decoded
	// in memory, so fewer of them at a time.
	g.SetLimit(8)
	if content {
		g.SetLimit(2)
	}
	for i := range out {
		g.Go(func() error {
			e := &out[i]
			e.h, e.err = a.header(gctx, st, e.info, e.pk)
			if e.err == nil && content {
				_, e.err = a.readObject(gctx, st, e.info.Key, e.pk)
			}
			// A store that cannot be read is an error of the walk, not
			// a gap: only the objects that are there and wrong are.
			if e.err != nil && !isCorrupt(e.err) && !store.IsNotFound(e.err) {
				return e.err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// walk follows st's chain: from the oldest WAL of the lowest timeline,
// through its segments and chunks, to each child timeline at its switch
// point (from the verified history files), to the end.
func (a *StoreArchive) walk(name string, entries []entry) Chain {
	c := Chain{Store: name}
	spans := map[uint32][]entry{}
	bad := map[uint32][]entry{}
	children := map[uint32]entry{}
	for _, e := range entries {
		switch {
		case e.err != nil && e.pk.kind != kindHistory:
			bad[e.pk.tli] = append(bad[e.pk.tli], e)
		case e.err != nil:
			c.Gaps = append(c.Gaps, Gap{Store: name, Timeline: e.pk.tli, Reason: "history file does not verify: " + e.err.Error(), Key: e.info.Key})
		case e.pk.kind == kindHistory:
			c.Histories++
			// The highest timeline branching off a parent is the one
			// the server went on with.
			if old, ok := children[e.h.ParentTimeline]; !ok || old.pk.tli < e.pk.tli {
				children[e.h.ParentTimeline] = e
			}
		default:
			if e.pk.kind == kindSegment {
				c.Segments++
			} else {
				c.Chunks++
			}
			spans[e.pk.tli] = append(spans[e.pk.tli], e)
		}
	}
	tlis := make([]uint32, 0, len(spans)+len(bad))
	for t := range spans {
		tlis = append(tlis, t)
	}
	for t := range bad {
		tlis = append(tlis, t)
	}
	if len(tlis) == 0 {
		return c
	}
	cur := slices.Min(tlis)
	pos := LSN(^uint64(0))
	for _, e := range append(spans[cur], bad[cur]...) {
		pos = min(pos, e.pk.start)
	}
	c.Start = Position{Timeline: cur, LSN: pos}
	for {
		child, hasChild := children[cur]
		limit := LSN(^uint64(0))
		if hasChild {
			limit, _ = parseLSNHex(child.h.SwitchLSN)
		}
		pos = a.cover(&c, cur, pos, limit, spans[cur], bad[cur])
		if !hasChild {
			break
		}
		if pos < limit {
			c.Gaps = append(c.Gaps, a.gap(name, cur, pos, limit, bad[cur]))
		}
		cur, pos = child.pk.tli, limit
	}
	c.End = Position{Timeline: cur, LSN: pos}
	return c
}

// cover advances pos through the spans of one timeline up to limit,
// recording each hole, and returns where the timeline's WAL ends.
func (a *StoreArchive) cover(c *Chain, tli uint32, pos, limit LSN, spans, bad []entry) LSN {
	slices.SortFunc(spans, func(x, y entry) int { return cmp.Compare(x.pk.start, y.pk.start) })
	for _, e := range spans {
		if pos >= limit {
			break
		}
		if e.pk.end <= pos {
			continue
		}
		if e.pk.start > pos {
			c.Gaps = append(c.Gaps, a.gap(c.Store, tli, pos, min(e.pk.start, limit), bad))
		}
		pos = e.pk.end
	}
	// Bad objects past the last good one are still gaps: WAL was there.
	slices.SortFunc(bad, func(x, y entry) int { return cmp.Compare(x.pk.start, y.pk.start) })
	for _, e := range bad {
		if e.pk.end > pos && e.pk.start < limit {
			c.Gaps = append(c.Gaps, a.gap(c.Store, tli, pos, min(e.pk.end, limit), bad))
			pos = e.pk.end
		}
	}
	return pos
}

// gap describes [start, end) of tli, naming an object there that does not
// verify if there is one.
func (a *StoreArchive) gap(name string, tli uint32, start, end LSN, bad []entry) Gap {
	g := Gap{Store: name, Timeline: tli, Start: start, End: end, Reason: "not archived"}
	for _, e := range bad {
		if e.pk.start < end && e.pk.end > start {
			g.Reason, g.Key = "does not verify: "+e.err.Error(), e.info.Key
			break
		}
	}
	return g
}

func isCorrupt(err error) bool { return err != nil && errors.Is(err, ErrCorrupt) }

// End implements Archive: the lowest contiguous end over the stores that
// hold any WAL, so that an archiver resuming there leaves no store with a
// gap (a store added later starts where it is first written).
func (a *StoreArchive) End(ctx context.Context) (Position, error) {
	if err := a.learn(ctx); err != nil {
		return Position{}, err
	}
	var end Position
	found := false
	for _, st := range a.stores {
		entries, err := a.inventory(ctx, st, false)
		if err != nil {
			return Position{}, err
		}
		c := a.walk(st.Name(), entries)
		if c.Segments+c.Chunks == 0 && len(c.Gaps) == 0 {
			continue
		}
		p := c.Contiguous()
		if len(c.Gaps) > 0 {
			a.log.WithField("store", st.Name()).WithField("gap", c.Gaps[0].String()).
				Warn("the WAL archive has a gap: it ends at the gap's start; `pgbackup wal verify` lists every gap")
		}
		if !found || comparePositions(p, end) < 0 {
			end, found = p, true
		}
	}
	return end, nil
}

func comparePositions(x, y Position) int {
	if c := cmp.Compare(x.Timeline, y.Timeline); c != 0 {
		return c
	}
	return cmp.Compare(x.LSN, y.LSN)
}

// Scan walks each store's chain like Verify but from the listing and the
// objects' signed headers only, never reading a payload: headers are
// cached by ETag (objects are never rewritten), so a scan of a large
// archive lists each store and reads only the objects new since the last
// scan. A missing object, or one replaced (new ETag) by one whose header
// does not verify, shows as a gap; a payload altered under an intact
// header needs Verify.
func (a *StoreArchive) Scan(ctx context.Context) ([]Chain, error) {
	if err := a.learn(ctx); err != nil {
		return nil, err
	}
	var out []Chain
	for _, st := range a.stores {
		entries, err := a.inventory(ctx, st, false)
		if err != nil {
			return nil, err
		}
		out = append(out, a.walk(st.Name(), entries))
	}
	return out, nil
}

// Verify walks each store's chain from its oldest WAL to its end, reading
// every object whole and checking its signed checksums, and returns the
// chains with their gaps (exact LSN ranges).
func (a *StoreArchive) Verify(ctx context.Context) ([]Chain, error) {
	if err := a.learn(ctx); err != nil {
		return nil, err
	}
	var out []Chain
	for _, st := range a.stores {
		entries, err := a.inventory(ctx, st, true)
		if err != nil {
			return nil, err
		}
		out = append(out, a.walk(st.Name(), entries))
	}
	return out, nil
}
