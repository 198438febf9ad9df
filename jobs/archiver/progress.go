package archiver

import (
	"time"

	"github.com/autograph/pgbackup/jobs/wal"
)

// DefaultProgressInterval is how often Config.OnProgress is called while
// streaming (0: this).
const DefaultProgressInterval = 2 * time.Second

// Progress is the stream's position, reported to Config.OnProgress every
// ProgressInterval while streaming and once more when the streamer stops.
type Progress struct {
	Timeline uint32
	// Archived: every byte of WAL before it is durable in the archive.
	Archived wal.LSN
	// ServerEnd is the server's end of WAL as the stream last reported it
	// (the WAL end of its last message).
	ServerEnd wal.LSN
	// ArchivedThrough is the latest time at which the archive held
	// everything the server had written; zero until that is known (after
	// a start, until the stream has caught up past what it first saw).
	ArchivedThrough time.Time
	// SegmentSize is the server's wal_segment_size.
	SegmentSize uint64
	At          time.Time
}

// SlotLagBytes is the WAL the server holds for the slot and nothing else:
// the slot's restart_lsn follows the flush position, which is Archived.
func (p Progress) SlotLagBytes() int64 {
	if p.ServerEnd <= p.Archived {
		return 0
	}
	return int64(p.ServerEnd - p.Archived)
}

// LastSegment is the name of the WAL file holding the archive's last byte
// ("" before anything is archived).
func (p Progress) LastSegment() string {
	if p.Archived == 0 || p.SegmentSize == 0 {
		return ""
	}
	return wal.SegmentName(p.Timeline, uint64(p.Archived-1)/p.SegmentSize, p.SegmentSize)
}

// throughTracker finds archived_through: it remembers when the server
// reported each end of WAL, and the archive holds everything written by
// time t once the archived position reaches the end reported at t.
type throughTracker struct {
	// seen are (end, first time seen) in increasing order of both.
	seen []endSeen
	// last is the newest end reported (kept when seen empties); known
	// says there was one.
	last    wal.LSN
	known   bool
	through time.Time
}

type endSeen struct {
	end wal.LSN
	at  time.Time
}

const (
	// trackerResolution merges reports closer than this; the merged one
	// keeps the older time with the newer end, which only ever makes
	// archived_through later to be claimed (never too early).
	trackerResolution = 100 * time.Millisecond
	// trackerMax bounds memory while the archive falls far behind;
	// dropping the oldest report only delays the next claim.
	trackerMax = 4096
)

// observe records that the server's end of WAL was end at.
func (t *throughTracker) observe(end wal.LSN, at time.Time) {
	if t.known && end <= t.last {
		return
	}
	t.last, t.known = end, true
	n := len(t.seen)
	switch {
	case n > 0 && at.Sub(t.seen[n-1].at) < trackerResolution:
		t.seen[n-1].end = end
		return
	}
	if n == trackerMax {
		t.seen = append(t.seen[:0], t.seen[1:]...)
	}
	t.seen = append(t.seen, endSeen{end: end, at: at})
}

// advance is archived_through now that archived is durable: now when the
// archive holds the last end the server reported, else the time of the
// newest report the archive has reached, else what it was.
func (t *throughTracker) advance(archived wal.LSN, now time.Time) time.Time {
	if t.known && archived >= t.last {
		t.through = now
		t.seen = t.seen[:0]
		return t.through
	}
	i := 0
	for i < len(t.seen) && t.seen[i].end <= archived {
		i++
	}
	if i > 0 {
		t.through = t.seen[i-1].at
		t.seen = append(t.seen[:0], t.seen[i:]...)
	}
	return t.through
}
