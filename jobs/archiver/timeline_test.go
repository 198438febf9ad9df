package archiver_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/jobs/archiver"
	"github.com/autograph/pgbackup/jobs/archiver/archivertest"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/wal"
)

// asPostgres runs a PostgreSQL program as the postgres user when the test
// runs as root (postgres refuses root).
func asPostgres(ctx context.Context, name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}

// startStandby makes a streaming standby of p with pg_basebackup and
// starts it on a free loopback port; it is stopped when the test ends.
func startStandby(t *testing.T, p *pitrServer) (dir string, port int) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "pgbackup-tb-standby.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	ctx := t.Context()
	out, err := asPostgres(ctx, filepath.Join(p.env.PGBin, "pg_basebackup"), "-h", p.env.PGSocket, "-p", p.env.PGPort,
		"-U", "postgres", "-D", data, "-R", "-c", "fast", "-X", "stream").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_basebackup: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=on -c max_wal_senders=4", port, dir)
	out, err = asPostgres(ctx, filepath.Join(p.env.PGBin, "pg_ctl"), "-D", data, "-w", "-t", "60",
		"-l", filepath.Join(dir, "log"), "-o", opts, "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("start standby: %v: %s\n%s", err, out, log)
	}
	t.Cleanup(func() {
		_ = asPostgres(context.Background(), filepath.Join(p.env.PGBin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop").Run()
	})
	return dir, port
}

// startPrimaryAndStandby starts a primary with a table marks and its
// streaming standby, connected as postgres; port is the standby's.
func startPrimaryAndStandby(t *testing.T) (p, standby *pitrServer, port int) {
	t.Helper()
	p = startPITR(t)
	p.exec(t, "CREATE TABLE marks (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), pad text)")
	dir, port := startStandby(t, p)
	sb, err := pgx.Connect(t.Context(), fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", dir, port))
	if err != nil {
		t.Fatalf("connect to the standby: %v", err)
	}
	t.Cleanup(func() { sb.Close(context.Background()) })
	standby = &pitrServer{env: p.env, su: sb, segSize: p.segSize}
	standby.env.PGSocket, standby.env.PGPort = dir, strconv.Itoa(port)
	return p, standby, port
}

// TestStreamerFollowsATimelineSwitch streams from a standby, promotes it,
// and checks the streamer archived the new timeline's history file and
// carried on on timeline 2: its segments equal the promoted server's
// files, with no gap or duplicate across the switch.
func TestStreamerFollowsATimelineSwitch(t *testing.T) {
	t.Parallel()
	p, standby, port := startPrimaryAndStandby(t)
	ctx := t.Context()

	mem := &archivertest.Memory{SegmentSize: p.segSize}
	conn := pgtool.Conn{Host: "127.0.0.1", Port: port, User: p.conn.User, Password: p.conn.Password, SSLMode: "disable"}
	st := run(t, archiver.Config{Conn: conn, Slot: "follow", Archive: mem,
		PartialInterval: 100 * time.Millisecond, StatusInterval: 200 * time.Millisecond, Log: testLog(t)})
	p.exec(t, "INSERT INTO marks (pad) SELECT repeat('x', 200) FROM generate_series(1, 2000)")
	primaryAt := p.lsn(t, "SELECT pg_switch_wal()::text")
	waitFor(t, 30*time.Second, "the archive to pass "+primaryAt.String()+" on timeline 1", func() bool {
		st.alive(t)
		end, _ := mem.End(ctx)
		return end.LSN > primaryAt
	})

	// More WAL, without a switch, so that the promotion falls inside a
	// segment: its start comes from timeline 1, its rest from timeline 2.
	p.exec(t, "INSERT INTO marks (pad) SELECT repeat('z', 200) FROM generate_series(1, 500)")
	mid := p.lsn(t, "SELECT pg_current_wal_flush_lsn()::text")
	waitFor(t, 30*time.Second, "the standby to replay "+mid.String(), func() bool {
		return standby.lsn(t, "SELECT pg_last_wal_replay_lsn()::text") >= mid
	})
	standby.exec(t, "SELECT pg_promote(true, 60)")
	switchAt := standby.lsn(t, "SELECT pg_current_wal_lsn()::text")
	if uint64(switchAt)%p.segSize == 0 {
		t.Fatalf("promotion at %s, a segment boundary: the test wants one inside a segment", switchAt)
	}
	standby.exec(t, "INSERT INTO marks (pad) SELECT repeat('y', 200) FROM generate_series(1, 2000)")
	at := standby.lsn(t, "SELECT pg_switch_wal()::text")
	waitFor(t, 30*time.Second, "the archive to pass "+at.String()+" on timeline 2", func() bool {
		st.alive(t)
		end, _ := mem.End(ctx)
		return end.Timeline == 2 && end.LSN > at
	})
	if err := st.stop(); err != nil {
		t.Fatal(err)
	}
	if b := mem.Breaches(); len(b) > 0 {
		t.Fatalf("archive contract broken across the switch:\n%v", b)
	}
	segs := checkTimeline2(t, mem, standby)
	for segno, data := range mem.Segments(1) {
		if !bytes.Equal(data, p.walFile(t, 1, segno)) {
			t.Errorf("segment %d of timeline 1 differs from the primary's", segno)
		}
	}
	if _, ok := segs[uint64(switchAt)/p.segSize]; !ok {
		t.Errorf("the segment of the switch point %s is not complete on timeline 2", switchAt)
	}
}

// TestStreamerNewChainOnANewTimeline: the archive ends on timeline 1 of a
// primary; its standby, promoted to timeline 2, has no slot of the
// archive (slots are not replicated) and has moved on past the archive's
// end, as after a lost slot (a CHECKPOINT moves the redo point, where a
// new physical slot starts, past it). The streamer creates the slot there and
// starts a new chain at its segment on timeline 2 (the WAL in between is
// a gap), storing timeline 2's history file so that the archive's chain
// leads from timeline 1 to it.
func TestStreamerNewChainOnANewTimeline(t *testing.T) {
	t.Parallel()
	p, standby, port := startPrimaryAndStandby(t)
	ctx := t.Context()

	mem := &archivertest.Memory{SegmentSize: p.segSize}
	cfg := archiver.Config{Conn: p.conn, Slot: "newtl", Archive: mem,
		PartialInterval: 100 * time.Millisecond, StatusInterval: 200 * time.Millisecond, Log: testLog(t)}
	st := run(t, cfg)
	p.exec(t, "INSERT INTO marks (pad) SELECT repeat('x', 200) FROM generate_series(1, 1000)")
	at := p.lsn(t, "SELECT pg_switch_wal()::text")
	waitFor(t, 30*time.Second, "the archive to pass "+at.String(), func() bool {
		st.alive(t)
		end, _ := mem.End(ctx)
		return end.LSN > at
	})
	if err := st.stop(); err != nil {
		t.Fatal(err)
	}
	end, _ := mem.End(ctx)

	flushed := p.lsn(t, "SELECT pg_current_wal_flush_lsn()::text")
	waitFor(t, 30*time.Second, "the standby to replay "+flushed.String(), func() bool {
		return standby.lsn(t, "SELECT pg_last_wal_replay_lsn()::text") >= flushed
	})
	standby.exec(t, "SELECT pg_promote(true, 60)")
	for range 2 {
		standby.exec(t, "INSERT INTO marks (pad) SELECT repeat('y', 200) FROM generate_series(1, 1000)")
		standby.exec(t, "SELECT pg_switch_wal()")
	}
	// A physical slot starts at the last checkpoint's redo point: past
	// the archive's end once the promoted server has checkpointed.
	standby.exec(t, "CHECKPOINT")

	cfg.Conn.Port = port
	st = run(t, cfg)
	standby.exec(t, "INSERT INTO marks (pad) SELECT repeat('z', 200) FROM generate_series(1, 1000)")
	at = standby.lsn(t, "SELECT pg_switch_wal()::text")
	waitFor(t, 30*time.Second, "the archive to pass "+at.String()+" on timeline 2", func() bool {
		st.alive(t)
		e, _ := mem.End(ctx)
		return e.Timeline == 2 && e.LSN > at
	})
	if err := st.stop(); err != nil {
		t.Fatal(err)
	}
	for segno := range checkTimeline2(t, mem, standby) {
		if wal.LSN(segno*p.segSize) <= end.LSN {
			t.Errorf("segment %d of timeline 2 is not past the archive's old end %s: no gap was skipped", segno, end.LSN)
		}
	}
}

// checkTimeline2 wants the archive to hold the promoted server's history
// file of timeline 2 and complete segments of timeline 2, each equal to
// the server's file; it returns them.
func checkTimeline2(t *testing.T, mem *archivertest.Memory, standby *pitrServer) map[uint64][]byte {
	t.Helper()
	var history []byte
	if err := standby.su.QueryRow(t.Context(), "SELECT pg_read_binary_file('pg_wal/00000002.history')").Scan(&history); err != nil {
		t.Fatal(err)
	}
	if got := mem.History(2); !bytes.Equal(got, history) {
		t.Errorf("history of timeline 2 = %q, want the server's %q", got, history)
	}
	segs := mem.Segments(2)
	if len(segs) == 0 {
		t.Fatal("no complete segment on timeline 2")
	}
	for segno, data := range segs {
		if !bytes.Equal(data, standby.walFile(t, 2, segno)) {
			t.Errorf("segment %d of timeline 2 differs from the promoted server's", segno)
		}
	}
	return segs
}
