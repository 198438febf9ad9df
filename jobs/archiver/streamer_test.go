package archiver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/archiver"
	"github.com/autograph/pgbackup/jobs/archiver/archivertest"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/wal"
)

// pitrServer is a private PostgreSQL for WAL tests and a superuser
// connection to it (over its socket) to read its pg_wal.
type pitrServer struct {
	env     testbench.Env
	conn    pgtool.Conn
	su      *pgx.Conn
	segSize uint64
}

func startPITR(t *testing.T) *pitrServer {
	t.Helper()
	env := testbench.Require(t).StartPITRPostgres(t)
	ctx := t.Context()
	su, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable", env.PGSocket, env.PGPort))
	if err != nil {
		t.Fatalf("connect as postgres: %v", err)
	}
	t.Cleanup(func() { su.Close(context.Background()) })
	var seg string
	if err := su.QueryRow(ctx, "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'").Scan(&seg); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(seg, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(env.PGPort)
	return &pitrServer{env: env, su: su, segSize: n,
		conn: pgtool.Conn{Host: env.PGHost, Port: port, User: env.PGUser, Password: env.PGPassword, SSLMode: "disable"}}
}

func (p *pitrServer) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := p.su.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// setKeepSize changes max_slot_wal_keep_size and waits until new sessions
// see it (pg_reload_conf only signals the postmaster).
func (p *pitrServer) setKeepSize(t *testing.T, v string) {
	t.Helper()
	p.exec(t, "ALTER SYSTEM SET max_slot_wal_keep_size = '"+v+"'")
	p.exec(t, "SELECT pg_reload_conf()")
	waitFor(t, 20*time.Second, "max_slot_wal_keep_size = "+v, func() bool {
		c, err := pgx.Connect(t.Context(), fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres", p.env.PGSocket, p.env.PGPort))
		if err != nil {
			return false
		}
		defer c.Close(context.Background())
		var got string
		return c.QueryRow(t.Context(), "SHOW max_slot_wal_keep_size").Scan(&got) == nil && got == v
	})
}

// walFile is the server's segment file, read as superuser.
func (p *pitrServer) walFile(t *testing.T, tli uint32, segno uint64) []byte {
	t.Helper()
	perID := uint64(0x100000000) / p.segSize
	name := fmt.Sprintf("pg_wal/%08X%08X%08X", tli, segno/perID, segno%perID)
	var b []byte
	if err := p.su.QueryRow(t.Context(), "SELECT pg_read_binary_file($1)", name).Scan(&b); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func (p *pitrServer) lsn(t *testing.T, sql string) wal.LSN {
	t.Helper()
	var s string
	if err := p.su.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	l, err := wal.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testLog(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(t.Output())
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamer is a running Streamer.
type streamer struct {
	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

// run starts a streamer, stopped when the test ends.
func run(t *testing.T, cfg archiver.Config) *streamer {
	t.Helper()
	s, err := archiver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &streamer{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// alive fails the test at once if the streamer ended by itself.
func (r *streamer) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		r.ended, r.err = true, err
		t.Fatalf("streamer ended by itself: %v", err)
	default:
	}
}

// stop cancels the streamer and returns Run's error.
func (r *streamer) stop() error {
	if r.ended {
		return r.err
	}
	r.cancel()
	select {
	case r.err = <-r.done:
	case <-time.After(time.Minute):
		r.err = errors.New("streamer did not stop within a minute")
	}
	r.ended = true
	return r.err
}

// writer inserts rows until stopped, so that WAL flows while streaming.
func (p *pitrServer) writer(t *testing.T) (stop func()) {
	t.Helper()
	p.exec(t, "CREATE TABLE IF NOT EXISTS marks (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), pad text)")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres", p.env.PGSocket, p.env.PGPort))
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		for ctx.Err() == nil {
			_, _ = c.Exec(ctx, "INSERT INTO marks (pad) SELECT repeat('x', 200) FROM generate_series(1, 50)")
		}
	}()
	return func() { cancel(); <-done }
}

// TestStreamerArchivesTheServersWALExactly streams while a writer inserts
// rows and segments are switched, stops and restarts the streamer, and
// compares every stored byte with the server's own pg_wal files: complete
// segments whole, chunks at their offsets. The in-memory archive records
// any gap or duplicate across the restart. The slot never gets ahead of
// the archive.
func TestStreamerArchivesTheServersWALExactly(t *testing.T) {
	t.Parallel()
	p := startPITR(t)
	mem := &archivertest.Memory{SegmentSize: p.segSize}
	cfg := archiver.Config{Conn: p.conn, Slot: "pitr_test", Archive: mem,
		PartialInterval: 200 * time.Millisecond, StatusInterval: 200 * time.Millisecond, Log: testLog(t)}

	// A slot that moved ahead of the archive would let the server drop
	// WAL that is not stored.
	slotBehindArchive := func() {
		t.Helper()
		var restart *string
		if err := p.su.QueryRow(t.Context(), "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'pitr_test'").Scan(&restart); err != nil || restart == nil {
			return
		}
		r, _ := wal.ParseLSN(*restart)
		end, _ := mem.End(t.Context())
		if end != (wal.Position{}) && r > end.LSN {
			t.Errorf("slot restart_lsn %s is past the archive's end %s", r, end.LSN)
		}
	}

	var target, stoppedAt wal.LSN
	for round := range 2 {
		stopWriter := p.writer(t)
		st := run(t, cfg)
		for range 2 {
			// Something in the segment after target's, so the switch
			// completes a segment.
			next := (target/wal.LSN(p.segSize) + 1) * wal.LSN(p.segSize)
			waitFor(t, 30*time.Second, "WAL written", func() bool {
				return p.lsn(t, "SELECT pg_current_wal_lsn()::text") > next+64<<10
			})
			target = p.lsn(t, "SELECT pg_switch_wal()::text")
			slotBehindArchive()
		}
		// The open segment too: chunks reach the server's flush position.
		target = p.lsn(t, "SELECT pg_current_wal_flush_lsn()::text")
		waitFor(t, 30*time.Second, "archive to reach "+target.String(), func() bool {
			st.alive(t)
			slotBehindArchive()
			end, _ := mem.End(t.Context())
			return end.LSN >= target
		})
		stopWriter()
		if err := st.stop(); err != nil {
			t.Fatalf("round %d: Run = %v, want nil after cancel", round, err)
		}
		if round == 0 {
			end, _ := mem.End(t.Context())
			stoppedAt = end.LSN
		}
		slotBehindArchive()
	}

	if b := mem.Breaches(); len(b) > 0 {
		t.Fatalf("archive contract broken (gap or duplicate):\n%v", b)
	}
	segs := mem.Segments(1)
	end, _ := mem.End(t.Context())
	// Every segment from the first to the one before the open one is
	// stored whole (the one a restart resumed in included).
	first, open := uint64(0), uint64(end.LSN)/p.segSize
	for first = open; first > 0; first-- {
		if _, ok := segs[first-1]; !ok {
			break
		}
	}
	if open-first < 2 || len(segs) != int(open-first) {
		t.Fatalf("segments %d..%d complete, %d stored in all; want at least 2, contiguous", first, open-1, len(segs))
	}
	// The segment the second run resumed in was completed whole.
	if _, ok := segs[uint64(stoppedAt)/p.segSize]; !ok {
		t.Errorf("segment %d, where the first run stopped (%s), is not stored whole", uint64(stoppedAt)/p.segSize, stoppedAt)
	}
	for segno, data := range segs {
		if !bytes.Equal(data, p.walFile(t, 1, segno)) {
			t.Errorf("segment %d differs from the server's pg_wal file", segno)
		}
	}
	chunks := mem.Chunks()
	t.Logf("archived %d segments and %d chunks, through %s", len(segs), len(chunks), end.LSN)
	if len(chunks) == 0 {
		t.Fatal("no chunk stored: the open segment is never uploaded")
	}
	for _, c := range chunks {
		segno := uint64(c.Start) / p.segSize
		off := uint64(c.Start) % p.segSize
		file := p.walFile(t, c.Timeline, segno)
		if !bytes.Equal(c.Data, file[off:off+uint64(len(c.Data))]) {
			t.Errorf("chunk at %s (%d bytes) differs from the server's WAL", c.Start, len(c.Data))
		}
	}
}

// TestStreamerRefusesAnUnlimitedSlot: max_slot_wal_keep_size = -1 stops
// the start with ErrUnlimitedSlot, unless allowed; no slot is created.
// Allowed, the streamer stays connected by answering the server's
// keepalives.
func TestStreamerRefusesAnUnlimitedSlot(t *testing.T) {
	t.Parallel()
	p := startPITR(t)
	p.setKeepSize(t, "-1")
	mem := &archivertest.Memory{SegmentSize: p.segSize}
	s, err := archiver.New(archiver.Config{Conn: p.conn, Slot: "unlimited", Archive: mem})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, archiver.ErrUnlimitedSlot) {
		t.Fatalf("Run = %v, want ErrUnlimitedSlot", err)
	}
	var n int
	if err := p.su.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d slots after a refused start (err %v), want none", n, err)
	}

	// The server drops a receiver that does not answer its keepalives
	// within wal_sender_timeout; status updates of its own are an hour
	// apart here, so only the replies keep it connected.
	p.exec(t, "ALTER SYSTEM SET wal_sender_timeout = '500ms'")
	p.exec(t, "SELECT pg_reload_conf()")
	st := run(t, archiver.Config{Conn: p.conn, Slot: "unlimited", Archive: mem, AllowUnlimitedSlot: true,
		PartialInterval: 100 * time.Millisecond, StatusInterval: time.Hour})
	waitFor(t, 30*time.Second, "the allowed streamer to archive", func() bool {
		st.alive(t)
		end, _ := mem.End(ctx)
		return end != (wal.Position{})
	})
	var pid int
	replies := map[string]bool{}
	waitFor(t, 30*time.Second, "replies to 6 keepalives on one connection", func() bool {
		st.alive(t)
		var p2 int
		var reply *string
		err := p.su.QueryRow(ctx, "SELECT pid, reply_time::text FROM pg_stat_replication WHERE application_name = 'unlimited'").Scan(&p2, &reply)
		if err != nil || reply == nil {
			return false
		}
		if pid != 0 && p2 != pid {
			t.Fatalf("walsender %d replaced by %d: the server dropped the streamer", pid, p2)
		}
		pid = p2
		replies[*reply] = true
		return len(replies) >= 6
	})
	if err := st.stop(); err != nil {
		t.Fatalf("allowed streamer: %v", err)
	}
}

// TestSyncStreamerReleasesSynchronousCommits: with sync on, the archiver
// (application_name = its slot) can be the server's synchronous standby.
// Chunks are due only every hour here, so each commit returns only
// because the archiver stored its WAL and confirmed it at once; after it
// returns, the archive holds WAL past the commit's start.
func TestSyncStreamerReleasesSynchronousCommits(t *testing.T) {
	t.Parallel()
	p := startPITR(t)
	mem := &archivertest.Memory{SegmentSize: p.segSize}
	st := run(t, archiver.Config{Conn: p.conn, Slot: "pitr_sync", Archive: mem, Sync: true,
		PartialInterval: time.Hour, StatusInterval: time.Hour, Log: testLog(t)})
	p.exec(t, "CREATE TABLE sync_marks (id int)")
	p.exec(t, "ALTER SYSTEM SET synchronous_standby_names = 'pitr_sync'")
	p.exec(t, "SELECT pg_reload_conf()")
	waitFor(t, 30*time.Second, "the archiver to be the synchronous standby", func() bool {
		st.alive(t)
		var state string
		err := p.su.QueryRow(t.Context(), "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pitr_sync'").Scan(&state)
		return err == nil && state == "sync"
	})
	for i := range 20 {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		tx, err := p.su.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var before string
		if _, err := tx.Exec(ctx, "INSERT INTO sync_marks VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&before); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit %d not released by the archiver: %v", i, err)
		}
		cancel()
		b, _ := wal.ParseLSN(before)
		if end, _ := mem.End(t.Context()); end.LSN <= b {
			t.Fatalf("commit %d returned with the archive ending at %s, before the commit record at %s", i, end.LSN, b)
		}
	}
	// Without the archiver a commit must wait: the server really is
	// waiting for it (not an asynchronous standby).
	if err := st.stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := p.su.Exec(ctx, "INSERT INTO sync_marks VALUES (-1)"); err == nil {
		t.Fatal("a commit returned with the synchronous archiver stopped")
	}
}

// TestStreamerReportsALostSlot: with the archiver stopped, the server
// invalidates its slot once it holds more than max_slot_wal_keep_size; the
// next start says so (ErrSlotLost) instead of streaming over the gap.
func TestStreamerReportsALostSlot(t *testing.T) {
	t.Parallel()
	p := startPITR(t)
	mem := &archivertest.Memory{SegmentSize: p.segSize}
	cfg := archiver.Config{Conn: p.conn, Slot: "lost", Archive: mem, PartialInterval: 100 * time.Millisecond}
	st := run(t, cfg)
	waitFor(t, 30*time.Second, "the streamer to archive", func() bool {
		st.alive(t)
		end, _ := mem.End(t.Context())
		return end != (wal.Position{})
	})
	if err := st.stop(); err != nil {
		t.Fatal(err)
	}
	p.setKeepSize(t, "1MB")
	p.exec(t, "CREATE TABLE filler (pad text)")
	waitFor(t, 60*time.Second, "the server to invalidate the slot", func() bool {
		p.exec(t, "INSERT INTO filler SELECT repeat('x', 500) FROM generate_series(1, 5000)")
		p.exec(t, "SELECT pg_switch_wal()")
		p.exec(t, "CHECKPOINT")
		var status string
		err := p.su.QueryRow(t.Context(), "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost'").Scan(&status)
		return err == nil && status == "lost"
	})
	s, err := archiver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, archiver.ErrSlotLost) {
		t.Fatalf("Run = %v, want ErrSlotLost", err)
	}
}
