package archiver

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/wal"
)

// Sentinel errors, for errors.Is.
var (
	// ErrUnlimitedSlot: the server's max_slot_wal_keep_size is -1, so a
	// stopped archiver's slot would keep WAL until the primary's disk is
	// full. Refused unless the target allows it (allow_unlimited_slot).
	ErrUnlimitedSlot = errors.New("max_slot_wal_keep_size is unlimited (-1): a stopped archiver would fill the server's disk; set it, or allow_unlimited_slot")
	// ErrBadSlotName: replication slot names are [a-z0-9_]{1,63}.
	ErrBadSlotName = errors.New("invalid replication slot name")
	// ErrStreamGap: the server sent WAL that does not follow what was
	// received; never archived.
	ErrStreamGap = errors.New("WAL stream is not contiguous")
	// ErrSlotLost: the server invalidated the slot (it kept more than
	// max_slot_wal_keep_size of WAL for it) and removed WAL the archive
	// may lack. The archive has a gap from its end on: drop the slot; the
	// archiver then creates it again and goes on from the new slot's
	// position, a new chain after the gap; take a new base backup.
	ErrSlotLost = errors.New("replication slot invalidated by the server (max_slot_wal_keep_size exceeded): WAL was removed before it was archived; drop the slot and take a new base backup")
	// ErrStreamEnded: the server ended the stream without a next timeline
	// (it is shutting down, or was promoted away from us).
	ErrStreamEnded = errors.New("server ended the WAL stream")
)

// Defaults of Config.
const (
	DefaultPartialInterval = 5 * time.Second
	// DefaultStatusInterval is below the server's wal_sender_timeout
	// (60 s) with room to spare, like wal_receiver_status_interval.
	DefaultStatusInterval = 10 * time.Second
)

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Config is what a Streamer needs.
type Config struct {
	// Conn is the server; its user needs the REPLICATION attribute and a
	// `replication` line in pg_hba.conf. Database is ignored (WAL belongs
	// to the server).
	Conn pgtool.Conn
	// Slot is the physical replication slot, created if missing.
	Slot    string
	Archive wal.Archive
	// PartialInterval is how often the open segment's new bytes are
	// stored as a chunk (0: DefaultPartialInterval).
	PartialInterval time.Duration
	// StatusInterval is how often a standby status update is sent when
	// nothing else prompts one (0: DefaultStatusInterval).
	StatusInterval time.Duration
	// Sync stores every batch the server sends as soon as the stream has
	// caught up with the server's end, so that the flush position the
	// server sees (and waits for, through synchronous_standby_names)
	// moves as soon as the bytes are durable in the store. The streamer
	// connects with application_name = Slot: that is the name to list in
	// synchronous_standby_names. Each commit then waits for a store
	// write (the latency cost of RPO 0).
	Sync bool
	// AllowUnlimitedSlot accepts max_slot_wal_keep_size = -1.
	AllowUnlimitedSlot bool
	// OnProgress, when set, is called with the stream's position every
	// ProgressInterval (0: DefaultProgressInterval) and when Run stops.
	// It runs on the streaming goroutine: it must return at once (hand
	// the value to another goroutine for anything slow).
	OnProgress       func(Progress)
	ProgressInterval time.Duration
	Log              *logrus.Entry
}

// Streamer streams one server's WAL into an Archive.
type Streamer struct {
	cfg Config
}

// New checks cfg and returns a Streamer.
func New(cfg Config) (*Streamer, error) {
	if !slotName.MatchString(cfg.Slot) {
		return nil, fmt.Errorf("archiver: slot %q: %w", cfg.Slot, ErrBadSlotName)
	}
	if cfg.Archive == nil {
		return nil, errors.New("archiver: no archive")
	}
	if cfg.PartialInterval <= 0 {
		cfg.PartialInterval = DefaultPartialInterval
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		cfg.Log = logrus.NewEntry(l)
	}
	return &Streamer{cfg: cfg}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Run streams until ctx is cancelled or an error occurs. On cancel it
// stores what it received since the last chunk, then returns nil. Any
// Archive error stops it at once (a fenced archive refusing a write
// included): nothing is confirmed to the server that is not stored.
func (s *Streamer) Run(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return stopped(ctx, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st, err := s.prepare(ctx, conn)
	if err != nil {
		return stopped(ctx, err)
	}
	s.cfg.Log.WithFields(logrus.Fields{"slot": s.cfg.Slot, "timeline": st.tli, "start": wal.LSN(st.segStart).String(),
		"archived": st.archived.String()}).Info("archiver: streaming WAL")
	for {
		err := s.stream(ctx, conn, st)
		if err == nil || ctx.Err() != nil {
			// A store error caused by the cancel leaves archived where
			// it was; finish stores those bytes again. Only a stream
			// that stopped between messages (nil) can be drained.
			return s.finish(ctx, conn, st, err == nil)
		}
		next, ok := nextTimeline(err)
		if !ok {
			return err
		}
		if err := s.switchTimeline(ctx, conn, st, next); err != nil {
			return err
		}
	}
}

// stopped is nil when err only reflects ctx's end: a stop, not a failure.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// connect opens a physical replication connection (replication=true; a
// logical one, replication=database, cannot stream physical WAL).
func (s *Streamer) connect(ctx context.Context) (*pgconn.PgConn, error) {
	c := s.cfg.Conn
	kv := map[string]string{"host": c.Host, "port": strconv.Itoa(c.Port), "user": c.User,
		"password": c.Password, "sslmode": c.SSLMode, "sslrootcert": c.SSLRootCert,
		"replication": "true", "application_name": s.cfg.Slot}
	var b strings.Builder
	for _, k := range []string{"host", "port", "user", "password", "sslmode", "sslrootcert", "replication", "application_name"} {
		if kv[k] != "" {
			fmt.Fprintf(&b, "%s='%s' ", k, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[k]))
		}
	}
	cfg, err := pgconn.ParseConfig(b.String())
	if err != nil {
		return nil, fmt.Errorf("archiver: connect %s: %w", c.Addr(), err)
	}
	// A deadline, never a cancel request: the receive loop times out on
	// purpose to send status updates, and a cancel request would reach
	// the walsender.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("archiver: connect %s: %w", c.Addr(), err)
	}
	return conn, nil
}

// state is the stream's position. The open segment is buffered whole from
// its start (bounded: one segment), so that PutSegment gets exactly
// wal_segment_size bytes even when the stream resumed in its middle.
type state struct {
	tli     uint32
	segSize uint64
	// segStart is the start of the open segment; buf holds its bytes
	// [segStart, segStart+len(buf)), received is their end.
	segStart wal.LSN
	buf      []byte
	// archived: every byte before it is durable in the archive.
	archived  wal.LSN
	lastChunk time.Time
	// serverEnd is the server's end of WAL as last reported; through
	// turns those reports into archived_through (see Progress).
	serverEnd wal.LSN
	through   throughTracker
}

// serverAt notes the server's end of WAL from a message received now.
// XLogData carries the server's flush position; a keepalive carries what
// the walsender has sent, which is the same while it has caught up (and
// it sends new WAL as soon as it is flushed), so an idle server's end is
// never understated for long.
func (st *state) serverAt(end wal.LSN) {
	st.serverEnd = max(st.serverEnd, end)
	st.through.observe(end, time.Now())
}

// progress reports the position to OnProgress, if any.
func (s *Streamer) progress(st *state) {
	if s.cfg.OnProgress == nil {
		return
	}
	now := time.Now()
	s.cfg.OnProgress(Progress{Timeline: st.tli, Archived: st.archived, ServerEnd: max(st.serverEnd, st.archived),
		ArchivedThrough: st.through.advance(st.archived, now), SegmentSize: st.segSize, At: now})
}

func (st *state) received() wal.LSN { return st.segStart + wal.LSN(len(st.buf)) }

// prepare checks the server, makes the slot and finds where to start.
func (s *Streamer) prepare(ctx context.Context, conn *pgconn.PgConn) (*state, error) {
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("archiver: IDENTIFY_SYSTEM: %w", err)
	}
	if err := s.checkKeepSize(ctx, conn); err != nil {
		return nil, err
	}
	segSize, err := showSize(ctx, conn, "wal_segment_size")
	if err != nil {
		return nil, err
	}
	if segSize <= 0 {
		return nil, fmt.Errorf("archiver: wal_segment_size %d", segSize)
	}
	// The archive names segments by the server's size; one holding
	// another size's WAL is another server's.
	if err := s.cfg.Archive.SetSegmentSize(ctx, uint64(segSize)); err != nil {
		return nil, fmt.Errorf("archiver: %w", err)
	}
	slot, err := s.ensureSlot(ctx, conn)
	if err != nil {
		return nil, err
	}
	end, err := s.cfg.Archive.End(ctx)
	if err != nil {
		return nil, fmt.Errorf("archiver: archive end: %w", err)
	}
	st := &state{segSize: uint64(segSize), buf: make([]byte, 0, segSize), lastChunk: time.Now()}
	// The slot is confirmed only up to what is stored, so an intact slot's
	// restart_lsn is never past the archive's end (LSNs grow across
	// timelines too, so the comparison holds whatever the timelines). A
	// slot whose segment starts past the end was created after the old one
	// was lost: the server has removed the WAL in between, and resuming at
	// the end would fail for ever ("requested WAL segment has already been
	// removed").
	slotSeg := slot.lsn - slot.lsn%wal.LSN(segSize)
	gap := end != (wal.Position{}) && slot.lsn != 0 && end.LSN < slotSeg
	switch {
	case end != (wal.Position{}) && !gap:
		st.tli, st.archived = end.Timeline, end.LSN
	case slot.lsn != 0:
		st.tli, st.archived = slot.tli, slotSeg
	default:
		st.tli, st.archived = uint32(sys.Timeline), wal.LSN(sys.XLogPos)-wal.LSN(sys.XLogPos)%wal.LSN(segSize)
	}
	if st.tli == 0 {
		st.tli = uint32(sys.Timeline)
	}
	if gap {
		if err := s.skipGap(ctx, conn, end, st, slot.created); err != nil {
			return nil, err
		}
	}
	// Stream from the segment's start: the bytes before archived are
	// stored already but PutSegment needs them; the slot keeps the whole
	// segment that holds its restart_lsn.
	st.segStart = st.archived - st.archived%wal.LSN(segSize)
	return st, nil
}

// skipGap starts a new chain at st after the WAL from end on that the
// server no longer has. A slot just created says so as an error (the gap
// is new: a base backup is needed); on later runs the archive's end is
// still that gap's start, and the slot, past it, is where the new chain
// goes on, which is only noted.
func (s *Streamer) skipGap(ctx context.Context, conn *pgconn.PgConn, end wal.Position, st *state, created bool) error {
	log := s.cfg.Log.WithFields(logrus.Fields{"slot": s.cfg.Slot, "archive_end": end.LSN.String(), "archive_end_timeline": end.Timeline,
		"start": st.archived.String(), "timeline": st.tli})
	if created {
		log.Errorf("archiver: the WAL archive has a gap from %s (its end, timeline %d) to %s: the server removed that WAL before it was archived (its slot was lost); restores cannot cross the gap: take a new base backup now. A new chain starts at %s, the start of the new slot's segment",
			end.LSN, end.Timeline, st.archived, st.archived)
	} else {
		log.Warnf("archiver: the WAL archive's contiguous end %s is before the slot's segment %s: the WAL from %s on is not on the server, a gap `pgbackup wal verify` lists (restores cannot cross it; a base backup taken after it starts a new chain). Going on from the slot's segment %s",
			end.LSN, st.archived, end.LSN, st.archived)
	}
	return s.storeHistories(ctx, conn, end.Timeline, st.tli)
}

// storeHistories stores the history files of the timelines after from up
// to to, so that the archive's chain leads from the timeline it ends on to
// the one streaming starts on (a stream that follows a switch stores them
// as it crosses it, but after a gap streaming starts on the new timeline).
func (s *Streamer) storeHistories(ctx context.Context, conn *pgconn.PgConn, from, to uint32) error {
	for tli := to; tli > from && tli > 1; {
		h, err := pglogrepl.TimelineHistory(ctx, conn, int32(tli))
		if err != nil {
			return fmt.Errorf("archiver: TIMELINE_HISTORY %d: %w", tli, err)
		}
		if err := s.cfg.Archive.PutHistory(ctx, tli, h.Content); err != nil {
			return fmt.Errorf("archiver: store history of timeline %d: %w", tli, err)
		}
		parent, _, err := wal.ParseHistory(h.Content)
		if err != nil || parent >= tli {
			return fmt.Errorf("archiver: history of timeline %d: no parent timeline before it (%v)", tli, err)
		}
		tli = parent
	}
	return nil
}

func (s *Streamer) checkKeepSize(ctx context.Context, conn *pgconn.PgConn) error {
	v, err := show(ctx, conn, "max_slot_wal_keep_size")
	if err != nil {
		return err
	}
	if v == "-1" && !s.cfg.AllowUnlimitedSlot {
		return fmt.Errorf("archiver: %s: %w", s.cfg.Conn.Addr(), ErrUnlimitedSlot)
	}
	return nil
}

// slotInfo is the archive's slot on the server: where its WAL starts
// (restart_lsn), on which timeline, and whether this run created it.
type slotInfo struct {
	lsn     wal.LSN
	tli     uint32
	created bool
}

// ensureSlot reads the slot (READ_REPLICATION_SLOT, PostgreSQL 15+) and
// creates it with RESERVE_WAL when missing, so that the server keeps WAL
// from now on even before the first START_REPLICATION.
func (s *Streamer) ensureSlot(ctx context.Context, conn *pgconn.PgConn) (slotInfo, error) {
	slot, found, err := s.readSlot(ctx, conn)
	if err != nil || found {
		return slot, err
	}
	if _, err := conn.Exec(ctx, "CREATE_REPLICATION_SLOT "+s.cfg.Slot+" PHYSICAL RESERVE_WAL").ReadAll(); err != nil {
		return slotInfo{}, fmt.Errorf("archiver: create slot %s: %w", s.cfg.Slot, err)
	}
	s.cfg.Log.WithField("slot", s.cfg.Slot).Info("archiver: created replication slot")
	// Read back: a physical slot's answer to CREATE carries no position
	// (its consistent_point is 0/0), READ_REPLICATION_SLOT gives the
	// restart_lsn RESERVE_WAL set.
	slot, found, err = s.readSlot(ctx, conn)
	if err == nil && !found {
		err = fmt.Errorf("archiver: slot %s missing right after its creation", s.cfg.Slot)
	}
	slot.created = true
	return slot, err
}

// readSlot reads the slot; found is false when the server has none.
func (s *Streamer) readSlot(ctx context.Context, conn *pgconn.PgConn) (slot slotInfo, found bool, err error) {
	res, err := conn.Exec(ctx, "READ_REPLICATION_SLOT "+s.cfg.Slot).ReadAll()
	if err != nil {
		return slotInfo{}, false, fmt.Errorf("archiver: read slot %s: %w", s.cfg.Slot, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 3 || res[0].Rows[0][0] == nil {
		return slotInfo{}, false, nil
	}
	row := res[0].Rows[0]
	if string(row[0]) != "physical" {
		return slotInfo{}, true, fmt.Errorf("archiver: slot %s is %s, not physical", s.cfg.Slot, row[0])
	}
	if row[1] == nil { // invalidated: max_slot_wal_keep_size was exceeded
		return slotInfo{}, true, fmt.Errorf("archiver: slot %s: %w", s.cfg.Slot, ErrSlotLost)
	}
	lsn, err := wal.ParseLSN(string(row[1]))
	if err != nil {
		return slotInfo{}, true, fmt.Errorf("archiver: slot %s: %w", s.cfg.Slot, err)
	}
	tli, _ := strconv.ParseUint(string(row[2]), 10, 32)
	return slotInfo{lsn: lsn, tli: uint32(tli)}, true, nil
}

func show(ctx context.Context, conn *pgconn.PgConn, name string) (string, error) {
	res, err := conn.Exec(ctx, "SHOW "+name).ReadAll()
	if err != nil {
		return "", fmt.Errorf("archiver: SHOW %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return "", fmt.Errorf("archiver: SHOW %s: unexpected answer", name)
	}
	return string(res[0].Rows[0][0]), nil
}

// showSize reads a setting in bytes ("16MB").
func showSize(ctx context.Context, conn *pgconn.PgConn, name string) (int64, error) {
	v, err := show(ctx, conn, name)
	if err != nil {
		return 0, err
	}
	n, err := parseSize(v)
	if err != nil {
		return 0, fmt.Errorf("archiver: SHOW %s: %w", name, err)
	}
	return n, nil
}

// parseSize reads PostgreSQL's memory units (B, kB, MB, GB, TB).
func parseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", v, err)
			}
			return n * u.mult, nil
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", v, err)
	}
	return n, nil
}

// endOfTimeline carries the server's next timeline when it ends the
// current one (after a promotion).
type endOfTimeline struct {
	tli   uint32
	start wal.LSN
}

func (e *endOfTimeline) Error() string {
	return fmt.Sprintf("end of timeline; next %d at %s", e.tli, e.start)
}

func nextTimeline(err error) (*endOfTimeline, bool) {
	var e *endOfTimeline
	if errors.As(err, &e) {
		return e, true
	}
	if tli, lsn, ok := pglogrepl.IsErrEndTimeline(err); ok {
		return &endOfTimeline{tli: uint32(tli), start: wal.LSN(lsn)}, true
	}
	return nil, false
}

// switchTimeline stores the bytes of the old timeline, archives the next
// timeline's history file and carries on there. The open segment's buffer
// stays: the new timeline's segment begins with the same bytes up to the
// switch point (PostgreSQL copies them at promotion).
func (s *Streamer) switchTimeline(ctx context.Context, conn *pgconn.PgConn, st *state, next *endOfTimeline) error {
	if err := s.putChunk(ctx, st); err != nil {
		return err
	}
	h, err := pglogrepl.TimelineHistory(ctx, conn, int32(next.tli))
	if err != nil {
		return fmt.Errorf("archiver: TIMELINE_HISTORY %d: %w", next.tli, err)
	}
	if err := s.cfg.Archive.PutHistory(ctx, next.tli, h.Content); err != nil {
		return fmt.Errorf("archiver: store history of timeline %d: %w", next.tli, err)
	}
	s.cfg.Log.WithFields(logrus.Fields{"timeline": next.tli, "at": next.start.String()}).Info("archiver: timeline switch")
	st.tli = next.tli
	return nil
}
