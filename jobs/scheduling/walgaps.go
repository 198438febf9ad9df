package scheduling

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/loop"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/wal"
)

// WALScanner is what the WAL watcher reads: each store's chain from the
// listing and the signed headers (*wal.StoreArchive's Scan).
type WALScanner interface {
	Scan(ctx context.Context) ([]wal.Chain, error)
}

// ServerLSN returns how far the archived server has flushed its WAL.
type ServerLSN func(ctx context.Context) (wal.LSN, error)

// WALGapRecorder publishes what the WAL watcher found, for /metrics (a
// *coord.State).
type WALGapRecorder interface {
	RecordWALGaps(ctx context.Context, targets []string, gaps int, oldest string, at time.Time) error
}

// WALWatcher watches one pitr server's WAL archive: every Interval it
// scans the archive's chains and raises one wal.gap alert per distinct gap
// (store, timeline and LSN range) between the start of the oldest trusted
// base backup of the archive (the oldest archived WAL while there is none:
// WAL before the oldest base backup is needed by no restore) and the end,
// and one wal.gap.resolved when that gap is no longer there; and,
// when the server can be asked (Server), one wal.stalled alert when the
// server has been past the archive's end for StallAfter while that end
// did not move. An idle server (flushed no further than the archive) is no
// stall. When it can read the archive's replication slot (Slot), it
// raises wal.slot_lag and wal.slot_lost (see checkSlot): that needs the
// server only, so it works while the archiver is dead. What was reported
// lives in this process: a restarted scheduler reports a persisting gap
// (or lag, or lost slot) once more.
type WALWatcher struct {
	// Archive names the archive (its first target); Targets are the pitr
	// targets it serves, for the log.
	Archive string
	Targets []string
	Scanner WALScanner
	// Backups lists the base backups (an *engine.Engine); nil watches
	// the whole archive.
	Backups policy.Lister
	// State receives the number of gaps after each check; nil: none.
	State      WALGapRecorder
	Server     ServerLSN
	StallAfter time.Duration
	// Slot reads the archive's replication slot SlotName on the server
	// (nil: not watched); SlotLag is when wal.slot_lag fires; Record, when
	// set, publishes the lag read.
	Slot     SlotReader
	SlotName string
	SlotLag  SlotLagAlert
	Record   SlotRecorder
	Alerts   *alert.Alerter
	Interval time.Duration
	Log      *logrus.Entry
	// Now is the clock (time.Now when nil), for tests.
	Now func() time.Time

	gaps    map[string]wal.Gap
	end     wal.Position
	endSeen bool
	movedAt time.Time
	// behindSince is when the server was first seen past the end since
	// it last moved (zero: not seen).
	behindSince time.Time
	stalled     bool
	serverErr   bool
	// quietUntil: after the server failed to answer, it is not asked
	// again before this, so that a scheduler without its password does
	// not fill the server's log with failed logins every Interval.
	quietUntil time.Time
	slot       slotWatch
}

// Start checks at once and then every Interval, until ctx ends or the
// returned service is stopped.
func (w *WALWatcher) Start(ctx context.Context) *loop.Service {
	return loop.Start(ctx, w.Interval, w.Log, "wal archive check failed", w.Check)
}

// Check scans the archive once, reports new and resolved gaps, and
// checks for a stall. It is not safe for concurrent use (the loop calls it
// from one goroutine).
func (w *WALWatcher) Check(ctx context.Context) error {
	chains, err := w.Scanner.Scan(ctx)
	if err != nil {
		// The slot is on the server: a store that cannot be listed does
		// not stop watching it (with the last end seen).
		w.checkSlot(ctx, w.end)
		return fmt.Errorf("wal watch %s: %w", w.Archive, err)
	}
	// The slot is on the server: a failure to list the base backups does
	// not stop watching it.
	w.checkSlot(ctx, archiveEnd(chains))
	from, err := w.oldestBase(ctx)
	if err != nil {
		return err
	}
	n := w.checkGaps(ctx, chains, from)
	if w.State != nil {
		if err := w.State.RecordWALGaps(ctx, w.Targets, n, archiveStart(chains), w.now()); err != nil {
			w.Log.WithError(err).WithField("wal_archive", w.Archive).Warn("cannot publish the WAL archive's gaps")
		}
	}
	return w.checkStall(ctx, chains)
}

// oldestBase is where the oldest trusted base backup of the archive
// starts; the zero Position when there is none (or no Backups).
func (w *WALWatcher) oldestBase(ctx context.Context) (wal.Position, error) {
	if w.Backups == nil {
		return wal.Position{}, nil
	}
	entries, err := w.Backups.List(ctx, nil)
	if err != nil {
		return wal.Position{}, fmt.Errorf("wal watch %s: list base backups: %w", w.Archive, err)
	}
	m := policy.OldestBase(entries, w.Archive, nil)
	if m == nil {
		return wal.Position{}, nil
	}
	start, _, _ := policy.BaseRange(m)
	return start, nil
}

// needed reports whether a restore from a base backup starting at from
// (or, with the zero from, from the archive's start) can need the WAL of
// gap g: a gap wholly before from, on from's timeline or an earlier one,
// cannot. A history file that does not verify always can.
func needed(g wal.Gap, from wal.Position) bool {
	return g.End <= g.Start || g.Timeline > from.Timeline || g.End > from.LSN
}

// archiveStart is where the oldest WAL over the stores starts, in
// PostgreSQL's notation; empty when no store holds any.
func archiveStart(chains []wal.Chain) string {
	var start *wal.LSN
	for _, c := range chains {
		if c.Segments+c.Chunks > 0 && (start == nil || c.Start.LSN < *start) {
			start = &c.Start.LSN
		}
	}
	if start == nil {
		return ""
	}
	return start.String()
}

func (w *WALWatcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// serverFailed notes that the server could not be asked: it is not asked
// again for StallAfter (so that a scheduler without its password does not
// fill the server's log with failed logins), and the first failure in a
// row is logged.
func (w *WALWatcher) serverFailed(now time.Time, err error) {
	w.quietUntil = now.Add(max(w.StallAfter, w.Interval))
	// Without the server an idle one cannot be told from a stalled
	// archiver, nor a slot read: no alert, and one warning until it
	// answers again.
	if !w.serverErr {
		w.serverErr = true
		w.Log.WithError(err).WithField("wal_archive", w.Archive).
			Warn("cannot ask the server how far its WAL is, nor read its replication slot: stalls and slot alerts of this archive are not raised until it answers")
	}
}

func gapKey(g wal.Gap) string {
	return fmt.Sprintf("%s\x00%d\x00%s\x00%s\x00%s", g.Store, g.Timeline, g.Start, g.End, g.Key)
}

// checkGaps reports new and resolved gaps a restore from from on can
// need, and returns how many there are now.
func (w *WALWatcher) checkGaps(ctx context.Context, chains []wal.Chain, from wal.Position) int {
	if w.gaps == nil {
		w.gaps = map[string]wal.Gap{}
	}
	now := map[string]wal.Gap{}
	for _, c := range chains {
		for _, g := range c.Gaps {
			if needed(g, from) {
				now[gapKey(g)] = g
			}
		}
	}
	for k, g := range now {
		if _, ok := w.gaps[k]; ok {
			continue
		}
		w.gaps[k] = g
		w.log(g).Error("the WAL archive has a gap: a point-in-time restore cannot cross it; take a base backup after it, and find the cause")
		w.Alerts.Emit(ctx, alert.Event{Event: alert.EventWALGap, Target: w.Archive, Error: g.String()})
	}
	for k, g := range w.gaps {
		if _, ok := now[k]; ok {
			continue
		}
		delete(w.gaps, k)
		w.log(g).Info("a WAL archive gap is no longer there")
		w.Alerts.Emit(ctx, alert.Event{Event: alert.EventWALGapResolved, Target: w.Archive, Error: g.String()})
	}
	return len(now)
}

func (w *WALWatcher) log(g wal.Gap) *logrus.Entry {
	return w.Log.WithFields(logrus.Fields{"wal_archive": w.Archive, "targets": strings.Join(w.Targets, ","),
		"store": g.Store, "timeline": g.Timeline, "start": g.Start.String(), "end": g.End.String(), "reason": g.Reason, "key": g.Key})
}

// archiveEnd is the furthest end over the stores: the archiver writes
// every store, so a store behind the others has a gap, reported as such.
func archiveEnd(chains []wal.Chain) wal.Position {
	var end wal.Position
	for _, c := range chains {
		if c.End.Timeline > end.Timeline || (c.End.Timeline == end.Timeline && c.End.LSN > end.LSN) {
			end = c.End
		}
	}
	return end
}

// checkStall raises wal.stalled once when the server has been past the
// archive's end for StallAfter while that end stood still, and notes
// (log) when it moves again. The clock starts when the server is first
// seen past the end, not when the end last moved: after a long idle
// period (the end still, the server no further) the first writes are not
// a stall, only an end that then does not follow them is.
func (w *WALWatcher) checkStall(ctx context.Context, chains []wal.Chain) error {
	if w.Server == nil || w.StallAfter <= 0 {
		return nil
	}
	now := w.now()
	end := archiveEnd(chains)
	if !w.endSeen || end != w.end {
		if w.stalled {
			w.Log.WithFields(logrus.Fields{"wal_archive": w.Archive, "end": end.LSN.String()}).Info("the WAL archive's end moves again")
		}
		w.end, w.endSeen, w.movedAt, w.behindSince, w.stalled = end, true, now, time.Time{}, false
		return nil
	}
	// The end stood still since the last check: ask the server whether
	// it has written past it (an idle server has not).
	if w.stalled || now.Before(w.quietUntil) {
		return nil
	}
	server, err := w.Server(ctx)
	if err != nil {
		w.serverFailed(now, err)
		return nil
	}
	w.serverErr = false
	if server <= end.LSN {
		w.behindSince = time.Time{}
		return nil // idle: nothing written that the archive lacks
	}
	if w.behindSince.IsZero() {
		w.behindSince = now
	}
	if now.Sub(w.behindSince) < w.StallAfter {
		return nil
	}
	w.stalled = true
	msg := fmt.Sprintf("archive end %s has not moved for %s, and the server has been past it for %s (flushed to %s)",
		end.LSN, now.Sub(w.movedAt).Round(time.Second), now.Sub(w.behindSince).Round(time.Second), server)
	w.Log.WithFields(logrus.Fields{"wal_archive": w.Archive, "end": end.LSN.String(), "server_lsn": server.String()}).
		Error("the WAL archiver has stalled: " + msg)
	w.Alerts.Emit(ctx, alert.Event{Event: alert.EventWALStalled, Target: w.Archive, Error: msg})
	return nil
}

// ServerFlushLSN asks the server at conn how far it has flushed its WAL
// (pg_current_wal_flush_lsn: what a walsender can send). It connects only
// when called, which the watcher does at each check that finds the
// archive's end where it was at the last, and gives up after 10 s.
func ServerFlushLSN(conn pgtool.Conn) ServerLSN {
	return func(ctx context.Context) (wal.LSN, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := pgtool.Connect(ctx, conn)
		if err != nil {
			return 0, fmt.Errorf("server wal position: %w", err)
		}
		defer c.Close(context.WithoutCancel(ctx))
		var s string
		if err := c.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&s); err != nil {
			return 0, fmt.Errorf("server wal position: %w", err)
		}
		return wal.ParseLSN(s)
	}
}
