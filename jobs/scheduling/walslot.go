package scheduling

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/wal"
)

// SlotState is what the server says of an archive's replication slot
// (pg_replication_slots) and of the WAL it may keep for it.
type SlotState struct {
	// Exists: the server has the slot.
	Exists bool
	// WALStatus is the slot's wal_status: reserved, extended, unreserved
	// (the next checkpoint removes WAL it needs) or lost.
	WALStatus string
	// LagBytes is pg_current_wal_lsn() - restart_lsn: the WAL the server
	// keeps for the slot (0 when restart_lsn is null, as for a lost slot).
	LagBytes int64
	// SafeWALSize is safe_wal_size: how much more WAL can be written
	// before the slot is in danger of being lost; -1 when null (an
	// unlimited max_slot_wal_keep_size, or a lost slot).
	SafeWALSize int64
	// KeepSize is max_slot_wal_keep_size in bytes, -1 for unlimited.
	KeepSize int64
	// Current is the server's pg_current_wal_lsn().
	Current wal.LSN
}

// SlotReader reads the archive's slot on its server.
type SlotReader func(ctx context.Context) (SlotState, error)

// SlotRecorder publishes what the watcher read of the slot, for the API
// and /metrics (coord.State.RecordSlot).
type SlotRecorder interface {
	RecordSlot(ctx context.Context, targets []string, r coord.SlotReading) error
}

// DefaultUnlimitedSlotLagAlert is the lag alert's threshold when it is a
// percentage of max_slot_wal_keep_size and the server has none
// (allow_unlimited_slot): a percentage of nothing cannot be reached.
const DefaultUnlimitedSlotLagAlert = 1 << 30

// SlotLagAlert is when wal.slot_lag is raised: above Bytes, or above
// Percent of the server's max_slot_wal_keep_size; neither: never.
type SlotLagAlert struct {
	Percent float64
	Bytes   int64
}

// threshold is the lag above which the alert fires on a server whose
// max_slot_wal_keep_size is keep bytes (-1: unlimited); 0: never.
func (a SlotLagAlert) threshold(keep int64) int64 {
	switch {
	case a.Bytes > 0:
		return a.Bytes
	case a.Percent <= 0:
		return 0
	case keep <= 0:
		return DefaultUnlimitedSlotLagAlert
	default:
		return max(1, int64(float64(keep)*a.Percent/100))
	}
}

// slotWatch is what the watcher reported of the slot: one alert per
// episode, like the gaps.
type slotWatch struct {
	lagging bool
	lost    bool
}

// checkSlot reads the archive's slot on the server: it raises wal.slot_lag
// once when the slot keeps more WAL than the threshold (and
// wal.slot_lag.resolved once it is back under 90% of it), and
// wal.slot_lost once when the server has invalidated the slot, or the
// slot is gone although the archive holds WAL (end). It also publishes
// the lag it read, so that a dead archiver's last report does not hide
// the lag growing. A server that cannot be asked is retried after
// StallAfter, like the stall check.
func (w *WALWatcher) checkSlot(ctx context.Context, end wal.Position) {
	if w.Slot == nil {
		return
	}
	now := w.now()
	if now.Before(w.quietUntil) {
		return
	}
	s, err := w.Slot(ctx)
	if err != nil {
		w.serverFailed(now, err)
		return
	}
	w.serverErr = false
	log := w.Log.WithFields(logrus.Fields{"wal_archive": w.Archive, "slot": w.SlotName, "wal_status": s.WALStatus,
		"slot_lag_bytes": s.LagBytes, "archive_end": end.LSN.String()})
	lost := (s.Exists && s.WALStatus == "lost") || (!s.Exists && end.LSN != 0)
	switch {
	case lost && !w.slot.lost:
		w.slot.lost = true
		msg := w.slotLostMessage(s, end)
		log.Error(msg)
		w.Alerts.Emit(ctx, alert.Event{Event: alert.EventWALSlotLost, Target: w.Archive, Error: msg})
	case !lost && s.Exists && w.slot.lost:
		w.slot.lost = false
		log.Info("the archive's replication slot is back on the server")
	}
	if thr := w.SlotLag.threshold(s.KeepSize); thr > 0 && s.Exists && s.WALStatus != "lost" {
		switch {
		case !w.slot.lagging && s.LagBytes > thr:
			w.slot.lagging = true
			then := "once the slot keeps max_slot_wal_keep_size the server invalidates it and the archive gets a gap"
			if s.KeepSize < 0 {
				then = "max_slot_wal_keep_size is unlimited: the server keeps this WAL until its disk is full"
			}
			msg := fmt.Sprintf("slot %s keeps %s of WAL on the server, more than %s (wal_status %s, max_slot_wal_keep_size %s, safe_wal_size %s): the archiver is behind or not running; %s",
				w.SlotName, bytesText(s.LagBytes), bytesText(thr), s.WALStatus, bytesText(s.KeepSize), bytesText(s.SafeWALSize), then)
			log.Warn(msg)
			w.Alerts.Emit(ctx, alert.Event{Event: alert.EventWALSlotLag, Target: w.Archive, Error: msg})
		case w.slot.lagging && s.LagBytes < thr-thr/10:
			w.slot.lagging = false
			msg := fmt.Sprintf("slot %s keeps %s of WAL, under the threshold %s again", w.SlotName, bytesText(s.LagBytes), bytesText(thr))
			log.Info(msg)
			w.Alerts.Emit(ctx, alert.Event{Event: alert.EventWALSlotLagResolved, Target: w.Archive, Error: msg})
		}
	}
	w.recordSlot(ctx, s, lost, end, now)
}

// recordSlot publishes the lag read: the WAL the slot keeps or, for a lost
// or missing slot (which keeps nothing), the WAL the server wrote past the
// archive's end. Nothing before the archive holds any WAL.
func (w *WALWatcher) recordSlot(ctx context.Context, s SlotState, lost bool, end wal.Position, now time.Time) {
	if w.Record == nil || end.LSN == 0 {
		return
	}
	r := coord.SlotReading{LagBytes: s.LagBytes, Status: s.WALStatus, At: now}
	if !s.Exists {
		r.Status = "missing"
	}
	if lost {
		r.LagBytes = max(0, int64(s.Current)-int64(end.LSN))
	}
	if err := w.Record.RecordSlot(ctx, w.Targets, r); err != nil {
		w.Log.WithError(err).WithField("wal_archive", w.Archive).Warn("cannot publish the slot's lag")
	}
}

// slotLostMessage says what happened and what to do.
func (w *WALWatcher) slotLostMessage(s SlotState, end wal.Position) string {
	what := fmt.Sprintf("the server invalidated replication slot %s (wal_status lost: it kept more than max_slot_wal_keep_size %s) and removed WAL the archive had not received",
		w.SlotName, bytesText(s.KeepSize))
	if !s.Exists {
		what = fmt.Sprintf("replication slot %s is missing on the server although the archive holds WAL: the server keeps no WAL for the archive", w.SlotName)
	}
	return what + fmt.Sprintf(". The archive has a gap from its end %s on: no restore can reach past it. To do: drop the lost slot (SELECT pg_drop_replication_slot('%s')) if it is still listed; the archiver, retrying, then creates the slot again and archives from the new slot's position on, a new chain after the gap, which wal.gap and pgbackup wal verify report (restart the archiver to have it do so at once); then take a new base backup at once (pgbackup basebackup, or POST /api/admin/targets/%s/basebackup) so that restores can start after the gap; and find why the archiver fell behind (not running, too slow, or max_slot_wal_keep_size too small)",
		end.LSN, w.SlotName, w.Archive)
}

// bytesText is n in PostgreSQL's units, "unlimited" for -1.
func bytesText(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	for _, u := range []struct {
		unit string
		size int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}} {
		if n >= u.size {
			return fmt.Sprintf("%.1f%s", float64(n)/float64(u.size), u.unit)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// slotQuery reads the slot and the server's WAL position in one row, also
// when the slot is missing (the LEFT JOIN).
const slotQuery = `SELECT pg_current_wal_lsn()::text,
	pg_size_bytes(current_setting('max_slot_wal_keep_size')),
	s.slot_name IS NOT NULL, coalesce(s.wal_status, ''), coalesce(s.safe_wal_size, -1),
	coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint
	FROM (SELECT 1) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`

// ServerSlot reads slot on the server at conn: pg_replication_slots and
// pg_current_wal_lsn() need no privilege. It connects each time, and gives
// up after 10 s.
func ServerSlot(conn pgtool.Conn, slot string) SlotReader {
	return func(ctx context.Context) (SlotState, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := pgtool.Connect(ctx, conn)
		if err != nil {
			return SlotState{}, fmt.Errorf("read slot %s: %w", slot, err)
		}
		defer c.Close(context.WithoutCancel(ctx))
		var s SlotState
		var current string
		if err := c.QueryRow(ctx, slotQuery, slot).Scan(&current, &s.KeepSize, &s.Exists, &s.WALStatus, &s.SafeWALSize, &s.LagBytes); err != nil {
			return SlotState{}, fmt.Errorf("read slot %s: %w", slot, err)
		}
		if s.Current, err = wal.ParseLSN(current); err != nil {
			return SlotState{}, fmt.Errorf("read slot %s: %w", slot, err)
		}
		return s, nil
	}
}
