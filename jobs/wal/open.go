package wal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/autograph/pgbackup/store"
)

// Segment is one segment read back from the archive.
type Segment struct {
	// Data is always the segment size: when the segment is still open,
	// the bytes past End are zero, as in pg_receivewal's .partial file,
	// and recovery stops at the first record that is not there.
	Data []byte
	// Start and End bound the archived WAL of this segment: Start is
	// after the segment's beginning when the archive began inside it
	// (those bytes are zero), End before its end while it is open.
	Start, End LSN
	Complete   bool
}

// Open returns segment segno of timeline tli, verified: the complete
// object, or else the segment assembled from its chunks (the open one),
// each checked against its signed checksum. Stores are tried in order; a
// store whose copy does not verify is passed over. ErrNotArchived (only)
// means no store holds any of it; a hole between chunks is ErrGap.
func (a *StoreArchive) Open(ctx context.Context, tli uint32, segno uint64) (Segment, error) {
	if err := a.learn(ctx); err != nil {
		return Segment{}, err
	}
	var errs []error
	for _, st := range a.stores {
		seg, err := a.openIn(ctx, st, tli, segno)
		if err == nil {
			return seg, nil
		}
		errs = append(errs, err)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrNotArchived) {
			return Segment{}, fmt.Errorf("wal open %s: %w", SegmentName(tli, segno, a.seg()), errors.Join(errs...))
		}
	}
	return Segment{}, fmt.Errorf("wal open %s: %w", SegmentName(tli, segno, a.seg()), ErrNotArchived)
}

func (a *StoreArchive) openIn(ctx context.Context, st store.Store, tli uint32, segno uint64) (Segment, error) {
	base := segmentBase(a.target, tli, segno, a.seg())
	objs, err := st.List(ctx, base)
	if err != nil {
		return Segment{}, fmt.Errorf("list %s: %w", st.Name(), err)
	}
	var whole error
	for _, o := range objs {
		pk, ok := parseKey(a.target, o.Key, a.seg())
		if !ok || pk.base != base {
			continue
		}
		data, err := a.readObject(ctx, st, o.Key, pk)
		if err == nil {
			return Segment{Data: data, Start: pk.start, End: pk.end, Complete: true}, nil
		}
		whole = err
	}
	seg, err := a.assemble(ctx, st, tli, segno)
	if err == nil && seg.Start > LSN(segno*a.seg()) {
		err = a.branchPrefix(ctx, st, tli, segno, &seg)
	}
	switch {
	case errors.Is(err, ErrNotArchived) && whole != nil:
		return Segment{}, whole
	case err != nil && whole != nil:
		return Segment{}, errors.Join(whole, err)
	}
	return seg, err
}

// assemble builds an open segment from its chunks in st. Chunks may
// overlap (an archiver resumed inside one); the overlapping bytes must
// agree.
func (a *StoreArchive) assemble(ctx context.Context, st store.Store, tli uint32, segno uint64) (Segment, error) {
	dir := tliDir(a.target, tli) + "partial/" + SegmentName(tli, segno, a.seg()) + "/"
	objs, err := st.List(ctx, dir)
	if err != nil {
		return Segment{}, fmt.Errorf("list %s: %w", st.Name(), err)
	}
	var chunks []parsedKey
	keys := map[string]string{}
	for _, o := range objs {
		if pk, ok := parseKey(a.target, o.Key, a.seg()); ok && pk.kind == kindPartial && pk.tli == tli && pk.segno == segno {
			chunks = append(chunks, pk)
			keys[pk.base] = o.Key
		}
	}
	if len(chunks) == 0 {
		return Segment{}, fmt.Errorf("%s in %s: %w", SegmentName(tli, segno, a.seg()), st.Name(), ErrNotArchived)
	}
	slices.SortFunc(chunks, func(x, y parsedKey) int { return cmp.Compare(x.start, y.start) })
	segStart := LSN(segno * a.seg())
	data := make([]byte, a.seg())
	// The archive may begin inside its first segment; only holes after
	// the first chunk are gaps.
	pos := chunks[0].start
	for _, pk := range chunks {
		if pk.end <= pos {
			continue
		}
		if pk.start > pos {
			return Segment{}, fmt.Errorf("%s in %s: %w: %s-%s not archived", SegmentName(tli, segno, a.seg()), st.Name(), ErrGap, pos, pk.start)
		}
		raw, err := a.readObject(ctx, st, keys[pk.base], pk)
		if err != nil {
			return Segment{}, err
		}
		off := pk.start - segStart
		if overlap := pos - pk.start; string(raw[:overlap]) != string(data[off:off+overlap]) {
			return Segment{}, fmt.Errorf("%w: %s in %s: chunks disagree before %s", ErrCorrupt, keys[pk.base], st.Name(), pos)
		}
		copy(data[off:], raw)
		pos = pk.end
	}
	return Segment{Data: data, Start: chunks[0].start, End: pos, Complete: chunks[0].start == segStart && pos == segStart+LSN(a.seg())}, nil
}

// branchPrefix fills the beginning of a new timeline's first segment from
// its parent when the archiver streamed the new timeline from the switch
// point: recovery reads that segment under the new timeline's name, and
// the WAL before the switch point in it is the parent's. Without a
// history file, or with the parent's WAL missing, seg is left as it is
// (its Start says what it holds; Verify reports the gap).
func (a *StoreArchive) branchPrefix(ctx context.Context, st store.Store, tli uint32, segno uint64, seg *Segment) error {
	base := historyBase(a.target, tli)
	objs, err := st.List(ctx, base)
	if err != nil {
		return fmt.Errorf("list %s: %w", st.Name(), err)
	}
	for _, o := range objs {
		pk, ok := parseKey(a.target, o.Key, a.seg())
		if !ok || pk.base != base {
			continue
		}
		h, err := a.header(ctx, st, o, pk)
		if err != nil {
			return err
		}
		switchAt, _ := parseLSNHex(h.SwitchLSN) // checked by readHeader
		if switchAt != seg.Start {
			return nil
		}
		parent, err := a.openIn(ctx, st, h.ParentTimeline, segno)
		if errors.Is(err, ErrNotArchived) || (err == nil && parent.End < switchAt) {
			return nil
		}
		if err != nil {
			return err
		}
		segStart := LSN(segno * a.seg())
		copy(seg.Data[:switchAt-segStart], parent.Data)
		seg.Start = parent.Start
		seg.Complete = seg.Start == segStart && seg.End == segStart+LSN(a.seg())
		return nil
	}
	return nil
}
