package coord

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WALStatus is what the archiver streaming a server's WAL last published
// for each pitr target on that server (issue #21, "knowing the archive is
// whole"). Its fields live in the target's hash (targetKey), prefixed
// "wal_", so that State.Status reads them with the rest.
type WALStatus struct {
	// Archive is the WAL archive's name (the server's first pitr target).
	Archive  string `json:"archive"`
	Timeline uint32 `json:"timeline"`
	// ArchivedLSN: every byte of WAL before it is durable in the archive.
	ArchivedLSN string `json:"archived_lsn"`
	// ArchivedThrough is the latest time at which the archive held
	// everything the server had written: now while the archive keeps up
	// (an idle server's included), frozen while it falls behind; zero
	// until known.
	ArchivedThrough time.Time `json:"archived_through"`
	// ServerLSN is the server's end of WAL as the stream last reported it.
	ServerLSN string `json:"server_lsn"`
	// SlotLagBytes is the WAL the server keeps for the slot only: the
	// newer of the archiver's ServerLSN - ArchivedLSN (its restart_lsn
	// follows the archived position) and the scheduler's reading of the
	// slot on the server (RecordSlot), so that a dead archiver's last
	// value does not hide the lag growing.
	SlotLagBytes int64 `json:"slot_lag_bytes"`
	// SlotStatus is the slot's wal_status as the scheduler last read it
	// ("reserved", "extended", "unreserved", "lost", or "missing"), and
	// SlotChecked when; empty and zero until a scheduler read it.
	SlotStatus  string    `json:"slot_status,omitempty"`
	SlotChecked time.Time `json:"slot_checked,omitzero"`
	// LastSegment is the WAL file name holding the archived end.
	LastSegment string `json:"last_segment"`
	// Updated is when the archiver published this.
	Updated time.Time `json:"updated"`
	// Started is when an archiver first published state for the target.
	// Until base backups bound it, it is the oldest second a restore can
	// reach from the archive.
	Started time.Time `json:"started"`
	// Gaps is how many gaps the WAL watcher found in its last check, in
	// the WAL from the oldest base backup on (the whole archive before
	// the first one), OldestLSN where the archive's WAL starts (the
	// oldest over the stores, PostgreSQL's notation), and GapsChecked
	// when it checked; zero until a scheduler has.
	Gaps        int       `json:"gaps"`
	OldestLSN   string    `json:"oldest_lsn"`
	GapsChecked time.Time `json:"gaps_checked"`
}

// LagSeconds is how far ArchivedThrough is behind now.
func (w WALStatus) LagSeconds(now time.Time) float64 {
	return max(0, now.Sub(w.ArchivedThrough).Seconds())
}

// RecordWAL publishes w for every target of w's archive. Each target's
// fields are one HSET (and one HSETNX for wal_started); the targets need
// not change together, so a pipeline, not a transaction (their keys may
// live in different cluster slots).
func (s *State) RecordWAL(ctx context.Context, targets []string, w WALStatus) error {
	pipe := s.rdb.Pipeline()
	for _, t := range targets {
		key := targetKey(t)
		pipe.HSetNX(ctx, key, "wal_started", w.Updated.UnixMilli())
		fields := map[string]any{
			"wal_archive": w.Archive, "wal_timeline": w.Timeline, "wal_archived_lsn": w.ArchivedLSN,
			"wal_server_lsn": w.ServerLSN, "wal_slot_lag_bytes": w.SlotLagBytes, "wal_last_segment": w.LastSegment,
			"wal_updated": w.Updated.UnixMilli(),
		}
		// Unknown (a streamer catching up after a start): the last
		// known value stands.
		if !w.ArchivedThrough.IsZero() {
			fields["wal_archived_through"] = w.ArchivedThrough.UnixMilli()
		}
		pipe.HSet(ctx, key, fields)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record wal state of %s: %w", w.Archive, err)
	}
	return nil
}

// SlotReading is what the scheduler's WAL watcher read of an archive's
// replication slot on the server.
type SlotReading struct {
	// LagBytes is the WAL the server keeps for the slot; for a lost or
	// missing slot, the WAL the server wrote past the archive's end.
	LagBytes int64
	// Status is the slot's wal_status, or "missing".
	Status string
	At     time.Time
}

// RecordSlot publishes r for every target of the archive, next to what
// the archiver publishes (RecordWAL): the reader takes the newer lag, so
// a dead archiver's last report does not stand for ever. Until an
// archiver has published (RecordWAL), a target's status shows no WAL
// state all the same.
func (s *State) RecordSlot(ctx context.Context, targets []string, r SlotReading) error {
	pipe := s.rdb.Pipeline()
	for _, t := range targets {
		pipe.HSet(ctx, targetKey(t), map[string]any{"wal_slot_server_lag_bytes": r.LagBytes,
			"wal_slot_status": r.Status, "wal_slot_checked": r.At.UnixMilli()})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record slot state of %s: %w", strings.Join(targets, ","), err)
	}
	return nil
}

// RecordWALGaps publishes, for every target of a WAL archive, what the
// WAL watcher found at at: the number of gaps and where the archive's WAL
// starts (see WALStatus).
func (s *State) RecordWALGaps(ctx context.Context, targets []string, gaps int, oldest string, at time.Time) error {
	pipe := s.rdb.Pipeline()
	for _, t := range targets {
		pipe.HSet(ctx, targetKey(t), map[string]any{"wal_gaps": gaps, "wal_oldest_lsn": oldest, "wal_gaps_checked": at.UnixMilli()})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record wal gaps of %v: %w", targets, err)
	}
	return nil
}

// walStatus reads the wal_ fields of a target's hash; nil when no archiver
// ever published any.
func walStatus(raw map[string]string) *WALStatus {
	if raw["wal_updated"] == "" {
		return nil
	}
	ms := func(k string) time.Time {
		n, err := strconv.ParseInt(raw[k], 10, 64)
		if err != nil || n == 0 {
			return time.Time{}
		}
		return time.UnixMilli(n).UTC()
	}
	tli, _ := strconv.ParseUint(raw["wal_timeline"], 10, 32)
	lag, _ := strconv.ParseInt(raw["wal_slot_lag_bytes"], 10, 64)
	gaps, _ := strconv.Atoi(raw["wal_gaps"])
	w := &WALStatus{
		Archive: raw["wal_archive"], Timeline: uint32(tli), ArchivedLSN: raw["wal_archived_lsn"],
		ArchivedThrough: ms("wal_archived_through"), ServerLSN: raw["wal_server_lsn"], SlotLagBytes: lag,
		LastSegment: raw["wal_last_segment"], Updated: ms("wal_updated"), Started: ms("wal_started"),
		SlotStatus: raw["wal_slot_status"], SlotChecked: ms("wal_slot_checked"),
		Gaps: gaps, OldestLSN: raw["wal_oldest_lsn"], GapsChecked: ms("wal_gaps_checked"),
	}
	if w.SlotChecked.After(w.Updated) {
		w.SlotLagBytes, _ = strconv.ParseInt(raw["wal_slot_server_lag_bytes"], 10, 64)
	}
	return w
}
