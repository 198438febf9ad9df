package archiver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/autograph/pgbackup/jobs/wal"
)

// stream runs one START_REPLICATION on st.tli from what was received. It
// returns nil when ctx ends, an *endOfTimeline when the server moves on to
// another timeline, and any other error as is.
func (s *Streamer) stream(ctx context.Context, conn *pgconn.PgConn, st *state) error {
	err := s.startReplication(ctx, conn, st)
	if err != nil {
		if _, ok := nextTimeline(err); ok {
			return err
		}
		return fmt.Errorf("archiver: START_REPLICATION %s timeline %d: %w", st.received(), st.tli, err)
	}
	// Tell the server at once what is archived: the slot's restart_lsn
	// follows the flush position.
	if err := s.status(ctx, conn, st); err != nil {
		return err
	}
	nextStatus := time.Now().Add(s.cfg.StatusInterval)
	var nextProgress time.Time
	for {
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		if now.After(st.lastChunk.Add(s.cfg.PartialInterval)) && st.received() > st.archived {
			if err := s.putChunk(ctx, st); err != nil {
				return err
			}
			nextStatus = now // the flush position moved
		}
		if !now.Before(nextStatus) {
			if err := s.status(ctx, conn, st); err != nil {
				return err
			}
			nextStatus = now.Add(s.cfg.StatusInterval)
		}
		if !now.Before(nextProgress) {
			s.progress(st)
			nextProgress = now.Add(s.cfg.ProgressInterval)
		}
		deadline := nextStatus
		if nextProgress.Before(deadline) {
			deadline = nextProgress
		}
		if chunkAt := st.lastChunk.Add(s.cfg.PartialInterval); st.received() > st.archived && chunkAt.Before(deadline) {
			deadline = chunkAt
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("archiver: receive: %w", err)
		}
		reply, err := s.handle(ctx, conn, st, msg)
		if err != nil {
			return err
		}
		if reply {
			nextStatus = time.Time{}
		}
	}
}

// slotBusyFor is how long START_REPLICATION waits for the slot to be
// released: the walsender of a previous session (ours, just stopped, or a
// dead archiver's until the server notices) holds it for a moment.
const slotBusyFor = 15 * time.Second

func (s *Streamer) startReplication(ctx context.Context, conn *pgconn.PgConn, st *state) error {
	deadline := time.Now().Add(slotBusyFor)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, pglogrepl.LSN(st.received()),
			pglogrepl.StartReplicationOptions{Timeline: int32(st.tli), Mode: pglogrepl.PhysicalReplication})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			return err
		}
		s.cfg.Log.WithField("slot", s.cfg.Slot).Debug("archiver: slot busy; waiting")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// handle takes one message from the server; reply says a status update is
// due now.
func (s *Streamer) handle(ctx context.Context, conn *pgconn.PgConn, st *state, msg pgproto3.BackendMessage) (reply bool, err error) {
	switch msg := msg.(type) {
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return false, fmt.Errorf("archiver: empty CopyData")
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return false, fmt.Errorf("archiver: %w", err)
			}
			st.serverAt(wal.LSN(pkm.ServerWALEnd))
			return pkm.ReplyRequested, nil
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return false, fmt.Errorf("archiver: %w", err)
			}
			archived := st.archived
			if err := s.receive(ctx, st, wal.LSN(xld.WALStart), xld.WALData); err != nil {
				return false, err
			}
			st.serverAt(wal.LSN(xld.ServerWALEnd))
			// Sync: store as soon as the stream has caught up with the
			// server, so that a waiting commit is released promptly.
			if s.cfg.Sync && st.received() >= wal.LSN(xld.ServerWALEnd) && st.received() > st.archived {
				if err := s.putChunk(ctx, st); err != nil {
					return false, err
				}
				return true, nil
			}
			// A segment was stored: the slot may move on now.
			return st.archived != archived, nil
		}
		return false, nil
	case *pgproto3.CopyDone:
		// End of timeline: answer CopyDone, read the next timeline.
		cdr, err := pglogrepl.SendStandbyCopyDone(ctx, conn)
		if err != nil {
			return false, fmt.Errorf("archiver: end of stream: %w", err)
		}
		if cdr == nil || cdr.Timeline <= 0 {
			return false, ErrStreamEnded
		}
		return false, &endOfTimeline{tli: uint32(cdr.Timeline), start: wal.LSN(cdr.LSN)}
	case *pgproto3.ErrorResponse:
		return false, fmt.Errorf("archiver: %w", pgconn.ErrorResponseToPgError(msg))
	}
	return false, nil
}

// receive appends WAL at start to the open segment, storing each segment
// whole as it completes.
func (s *Streamer) receive(ctx context.Context, st *state, start wal.LSN, data []byte) error {
	if start != st.received() {
		return fmt.Errorf("archiver: %w: got %s, expected %s", ErrStreamGap, start, st.received())
	}
	for len(data) > 0 {
		room := int(st.segSize) - len(st.buf)
		n := min(room, len(data))
		st.buf = append(st.buf, data[:n]...)
		data = data[n:]
		if len(st.buf) == int(st.segSize) {
			segno := uint64(st.segStart) / st.segSize
			s.cfg.Log.Debugf("segment %d", segno)
			if err := s.cfg.Archive.PutSegment(ctx, st.tli, segno, st.buf); err != nil {
				return fmt.Errorf("archiver: store segment %d of timeline %d: %w", segno, st.tli, err)
			}
			st.segStart += wal.LSN(st.segSize)
			st.archived = st.segStart
			st.buf = st.buf[:0]
			st.lastChunk = time.Now()
		}
	}
	return nil
}

// putChunk stores the open segment's bytes received since the last chunk.
func (s *Streamer) putChunk(ctx context.Context, st *state) error {
	st.lastChunk = time.Now()
	if st.received() <= st.archived {
		return nil
	}
	from := st.archived - st.segStart
	s.cfg.Log.Debugf("chunk %s +%d", st.archived, len(st.buf[from:]))
	if err := s.cfg.Archive.PutPartial(ctx, st.tli, st.archived, st.buf[from:]); err != nil {
		return fmt.Errorf("archiver: store chunk at %s of timeline %d: %w", st.archived, st.tli, err)
	}
	st.archived = st.received()
	return nil
}

// status reports the positions to the server: flush (and apply) is what
// the archive holds, so the slot never lets the server drop unarchived WAL;
// write is what was received, except in sync mode, where it too waits for
// the archive.
func (s *Streamer) status(ctx context.Context, conn *pgconn.PgConn, st *state) error {
	write := st.received()
	if s.cfg.Sync {
		write = st.archived
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(write),
		WALFlushPosition: pglogrepl.LSN(st.archived),
		WALApplyPosition: pglogrepl.LSN(st.archived),
	})
	if err != nil {
		return fmt.Errorf("archiver: standby status update: %w", err)
	}
	return nil
}

// What a stop may take (see finish): stopStoreTimeout bounds the last
// store, below the 10 s a container runtime waits after SIGTERM by default
// (docker stop, compose's stop_grace_period) before it kills; the drain
// reads what the server had sent before the stop, until it is quiet for
// drainIdle, for drainFor at most (a busy server never goes quiet).
const (
	stopStoreTimeout = 8 * time.Second
	drainIdle        = 200 * time.Millisecond
	drainFor         = 2 * time.Second
)

// finish runs when ctx ended: it stores what was received as a last
// chunk, first taking in what the server had already sent (drained, when
// the connection is still good), and tells the server, so the slot moves
// past exactly what is stored. ctx is cancelled by then (SIGTERM cancels
// the program's context), so the stores are written on a context without
// its cancel, bounded by stopStoreTimeout. A store error (a fenced
// archive's refusal included) is returned.
func (s *Streamer) finish(ctx context.Context, conn *pgconn.PgConn, st *state, drain bool) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopStoreTimeout)
	defer cancel()
	if drain {
		if err := s.drain(fctx, conn, st); err != nil {
			return err
		}
	}
	if err := s.putChunk(fctx, st); err != nil {
		return err
	}
	// Best effort: the connection may be gone; the next run reports again.
	_ = s.status(fctx, conn, st)
	s.progress(st)
	s.cfg.Log.WithField("archived", st.archived.String()).Info("archiver: stopped")
	return nil
}

// drain receives the WAL the server sent before the stop and is still in
// the connection: it was sent to us, so it is ours to store. It returns
// when nothing more comes for drainIdle, after drainFor, or on a
// connection error (then there is nothing more to read); only a store
// error (a segment completed while draining) is returned.
func (s *Streamer) drain(ctx context.Context, conn *pgconn.PgConn, st *state) error {
	until := time.Now().Add(drainFor)
	for time.Now().Before(until) {
		deadline := time.Now().Add(drainIdle)
		if deadline.After(until) {
			deadline = until
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			return nil
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 {
			return nil // end of stream or an error: nothing more to take
		}
		switch cd.Data[0] {
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				return nil
			}
			err = s.receive(ctx, st, wal.LSN(xld.WALStart), xld.WALData)
			if errors.Is(err, ErrStreamGap) {
				return nil // stored nothing; what came before is kept
			}
			if err != nil {
				return err
			}
			st.serverAt(wal.LSN(xld.ServerWALEnd))
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			if pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:]); err == nil {
				st.serverAt(wal.LSN(pkm.ServerWALEnd))
			}
		}
	}
	return nil
}
