package wal

import (
	"fmt"
	"strconv"
	"strings"
)

// The archive's object layout under wal/<target>/ (docs/architecture.md,
// "WAL archive"):
//
//	wal/<target>/<tli>/<segment>[.zst][.age]                       complete segment
//	wal/<target>/<tli>/partial/<segment>/<start>-<end>[.zst][.age] chunk [start, end)
//	wal/<target>/<tli>.history[.zst][.age]                         timeline history
//
// <tli> is 8 hex digits, <segment> PostgreSQL's 24-hex-digit file name,
// <start> and <end> 16 hex digits, so a listing sorts chunks by position.
// The extensions only say how the payload is encoded; the object's signed
// header (envelope.go) is what a reader trusts.

// DefaultSegmentSize is PostgreSQL's default wal_segment_size.
const DefaultSegmentSize = 16 << 20

// Root is the prefix of target's archive in every store.
func Root(target string) string { return "wal/" + target + "/" }

// SegmentName is PostgreSQL's file name of segment segno of timeline tli.
func SegmentName(tli uint32, segno uint64, segSize uint64) string {
	perID := 0x100000000 / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perID, segno%perID)
}

// ParseSegmentName reads a segment file name back.
func ParseSegmentName(name string, segSize uint64) (tli uint32, segno uint64, err error) {
	if len(name) != 24 {
		return 0, 0, fmt.Errorf("parse segment name %q: want 24 hex digits", name)
	}
	var parts [3]uint64
	for i := range parts {
		parts[i], err = strconv.ParseUint(name[i*8:i*8+8], 16, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("parse segment name %q: %w", name, err)
		}
	}
	return uint32(parts[0]), parts[1]*(0x100000000/segSize) + parts[2], nil
}

func tliDir(target string, tli uint32) string { return fmt.Sprintf("%s%08X/", Root(target), tli) }

// segmentBase is a complete segment's key without extensions.
func segmentBase(target string, tli uint32, segno, segSize uint64) string {
	return tliDir(target, tli) + SegmentName(tli, segno, segSize)
}

// chunkBase is a chunk's key without extensions.
func chunkBase(target string, tli uint32, segno, segSize uint64, start, end LSN) string {
	return fmt.Sprintf("%spartial/%s/%016X-%016X", tliDir(target, tli), SegmentName(tli, segno, segSize), uint64(start), uint64(end))
}

// historyBase is a timeline history file's key without extensions.
func historyBase(target string, tli uint32) string {
	return fmt.Sprintf("%s%08X.history", Root(target), tli)
}

// HistoryFileName is PostgreSQL's name of tli's history file.
func HistoryFileName(tli uint32) string { return fmt.Sprintf("%08X.history", tli) }

// objectKind is what an object of the archive holds.
type objectKind string

const (
	kindSegment objectKind = "segment"
	kindPartial objectKind = "partial"
	kindHistory objectKind = "history"
)

// parsedKey is what a key says about its object. The object's header says
// the same, signed; a reader checks that they agree, so an object copied to
// another key is refused.
type parsedKey struct {
	base       string
	kind       objectKind
	tli        uint32
	segno      uint64
	start, end LSN
}

// parseKey reads a key of target's archive; ok is false for keys that are
// not the archive's (left alone, never an error: a listing may hold
// anything).
func parseKey(target, key string, segSize uint64) (parsedKey, bool) {
	rest, ok := strings.CutPrefix(key, Root(target))
	if !ok {
		return parsedKey{}, false
	}
	base := key
	for _, ext := range []string{".age", ".zst", ".gz"} {
		if b, ok := strings.CutSuffix(rest, ext); ok {
			rest, base = b, strings.TrimSuffix(base, ext)
		}
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1 && strings.HasSuffix(parts[0], ".history"):
		tli, err := strconv.ParseUint(strings.TrimSuffix(parts[0], ".history"), 16, 32)
		return parsedKey{base: base, kind: kindHistory, tli: uint32(tli)}, err == nil && len(parts[0]) == 16
	case len(parts) == 2:
		tli, segno, err := ParseSegmentName(parts[1], segSize)
		if err != nil || parts[0] != fmt.Sprintf("%08X", tli) {
			return parsedKey{}, false
		}
		start := LSN(segno * segSize)
		return parsedKey{base: base, kind: kindSegment, tli: tli, segno: segno, start: start, end: start + LSN(segSize)}, true
	case len(parts) == 4 && parts[1] == "partial":
		tli, segno, err := ParseSegmentName(parts[2], segSize)
		if err != nil || parts[0] != fmt.Sprintf("%08X", tli) {
			return parsedKey{}, false
		}
		a, b, ok := strings.Cut(parts[3], "-")
		start, err1 := strconv.ParseUint(a, 16, 64)
		end, err2 := strconv.ParseUint(b, 16, 64)
		if !ok || err1 != nil || err2 != nil || len(a) != 16 || len(b) != 16 || start >= end ||
			start/segSize != segno || (end-1)/segSize != segno {
			return parsedKey{}, false
		}
		return parsedKey{base: base, kind: kindPartial, tli: tli, segno: segno, start: LSN(start), end: LSN(end)}, true
	}
	return parsedKey{}, false
}
