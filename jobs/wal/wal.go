// Package wal is the continuous WAL archive of a PostgreSQL server, kept in
// the same stores as the dumps: its layout, its writer and its reader. The
// archiver role (cmd/archiver) streams WAL from a server into an Archive;
// restores and `pgbackup wal verify` read it back.
//
// WAL belongs to a server, not a database: one archive per PITR target's
// server, under wal/<target>/ in its stores.
package wal

import (
	"context"
	"fmt"
)

// LSN is a position in the WAL (PostgreSQL's pg_lsn), written as two hex
// halves, "16/B374D848".
type LSN uint64

// String is PostgreSQL's notation.
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// ParseLSN reads PostgreSQL's notation.
func ParseLSN(s string) (LSN, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	return LSN(uint64(hi)<<32 | uint64(lo)), nil
}

// Position is a point in a server's WAL history: an LSN on a timeline.
type Position struct {
	Timeline uint32 `json:"timeline"`
	LSN      LSN    `json:"lsn"`
}

// Archive is one target's WAL archive. Every object it writes is written
// once and never rewritten (the immutable-archive issue locks them), so the
// open segment is kept as append-only chunks keyed by their LSN range, and
// a complete segment as one object; chunks become prunable once their
// segment is complete.
type Archive interface {
	// End is where the archive ends: every byte of WAL before it, from the
	// oldest archived segment on, is stored and verifiable. The zero
	// Position means the archive is empty. An archiver resumes streaming
	// here (never from the server's current position: that would leave a
	// silent gap), unless the server's slot starts past it: after a lost
	// slot the WAL in between is gone, and the archiver starts a new chain
	// at the slot, logging the gap (which the chain then shows).
	End(ctx context.Context) (Position, error)
	// SetSegmentSize tells the archive its server's wal_segment_size
	// before the first write: it decides the segments' names. An archive
	// holding WAL of another size refuses (ErrSegmentSize).
	SetSegmentSize(ctx context.Context, size uint64) error
	// PutPartial stores WAL bytes [start, start+len(data)) of timeline tli,
	// all within one segment, as a chunk. It returns once the chunk is
	// durable in every store: only then may the archiver confirm the
	// position to the server (sync mode).
	PutPartial(ctx context.Context, tli uint32, start LSN, data []byte) error
	// PutSegment stores segment segno of timeline tli complete (data is
	// exactly the server's wal_segment_size).
	PutSegment(ctx context.Context, tli uint32, segno uint64, data []byte) error
	// PutHistory stores a timeline history file (tli's, as the server
	// sends it after a promotion).
	PutHistory(ctx context.Context, tli uint32, content []byte) error
}
