package archiver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/archiver"
	"github.com/autograph/pgbackup/jobs/archiver/archivertest"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/wal"
)

// writers records which archiver wrote each object, in order.
type writers struct {
	mu  sync.Mutex
	who []string
}

func (w *writers) add(name string) { w.mu.Lock(); w.who = append(w.who, name); w.mu.Unlock() }
func (w *writers) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.who...)
}

// tagged is the shared archive as one archiver writes to it.
type tagged struct {
	wal.Archive
	name string
	w    *writers
}

func (t *tagged) PutPartial(ctx context.Context, tli uint32, start wal.LSN, data []byte) error {
	err := t.Archive.PutPartial(ctx, tli, start, data)
	t.w.add(t.name)
	return err
}

func (t *tagged) PutSegment(ctx context.Context, tli uint32, segno uint64, data []byte) error {
	err := t.Archive.PutSegment(ctx, tli, segno, data)
	t.w.add(t.name)
	return err
}

// cutter forwards TCP connections to addr until cut, which closes them
// all: an archiver cut off from Redis.
type cutter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutter(t *testing.T, addr string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln}
	t.Cleanup(c.cut)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

func (c *cutter) cut() {
	c.ln.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

// TestLeasedArchiversHandOver: two archivers share a target's archive; one
// streams, the other stands by. When the first is cut off from Redis (its
// renewal fails), it stops writing at once and the standby takes over
// within 15 s, from the archive's end: never both writing, no gap, no
// duplicate.
func TestLeasedArchiversHandOver(t *testing.T) {
	t.Parallel()
	p := startPITR(t)
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 11})
	t.Cleanup(func() { rdb.Close() })
	target := testbench.UniqueName("handover")
	mem := &archivertest.Memory{SegmentSize: p.segSize}
	w := &writers{}
	ctx, cancel := context.WithCancel(t.Context())
	done := map[string]chan error{"a": make(chan error, 1), "b": make(chan error, 1)}
	start := func(name string, rdb redis.UniversalClient) {
		cfg := archiver.Config{Conn: p.conn, Slot: "handover", Archive: &tagged{Archive: mem, name: name, w: w},
			PartialInterval: 100 * time.Millisecond, StatusInterval: 200 * time.Millisecond, Log: testLog(t).WithField("archiver", name)}
		lease := coord.NewArchiverLease(rdb, target, name, 2*time.Second, 200*time.Millisecond)
		go func() { done[name] <- archiver.RunLeased(ctx, lease, cfg) }()
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done["b"]; err != nil {
			t.Errorf("b: RunLeased = %v, want nil after cancel", err)
		}
		<-done["a"] // cut off from Redis, it may end with an error
	})
	stopWriter := p.writer(t)
	defer stopWriter()
	cut := newCutter(t, env.RedisAddr)
	rdbA := redis.NewClient(&redis.Options{Addr: cut.ln.Addr().String(), DB: 11, MaxRetries: -1})
	t.Cleanup(func() { rdbA.Close() })
	start("a", rdbA)
	waitFor(t, 30*time.Second, "a to write", func() bool { return len(w.list()) > 0 })
	start("b", rdb)
	waitFor(t, 30*time.Second, "a few more writes", func() bool { return len(w.list()) > 5 })
	for _, who := range w.list() {
		if who != "a" {
			t.Fatalf("writes by %v while a held the lease", w.list())
		}
	}

	cut.cut()
	cutAt := time.Now()
	waitFor(t, 30*time.Second, "b to take over and write", func() bool {
		l := w.list()
		return l[len(l)-1] == "b"
	})
	t.Logf("b wrote %.1f s after a was cut off from Redis", time.Since(cutAt).Seconds())
	target2 := p.lsn(t, "SELECT pg_switch_wal()::text")
	waitFor(t, 30*time.Second, "the archive to pass "+target2.String(), func() bool {
		end, _ := mem.End(t.Context())
		return end.LSN > target2
	})
	l := w.list()
	handover := 0
	for i := 1; i < len(l); i++ {
		if l[i] != l[i-1] {
			handover++
		}
	}
	if handover != 1 {
		t.Errorf("writers in order %v: want one handover from a to b", l)
	}
	if b := mem.Breaches(); len(b) > 0 {
		t.Errorf("archive contract broken across the handover:\n%v", b)
	}
	for segno, data := range mem.Segments(1) {
		if string(data) != string(p.walFile(t, 1, segno)) {
			t.Errorf("segment %d differs from the server's", segno)
		}
	}
}

// TestFencedArchiveRefusesOnceTheTokenMovedOn: the fence asks Redis on
// every write, so a holder whose lease another archiver took writes
// nothing more, even before its own renewal notices.
func TestFencedArchiveRefusesOnceTheTokenMovedOn(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 11})
	t.Cleanup(func() { rdb.Close() })
	target := testbench.UniqueName("fence")
	ctx := t.Context()
	// Renewals far apart: only the fence's own check can notice.
	old, err := coord.NewArchiverLease(rdb, target, "old", time.Minute, 30*time.Second).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Release(context.Background())
	mem := &archivertest.Memory{SegmentSize: 16 << 20}
	a := archiver.Fenced(mem, old.Check)
	if err := a.PutPartial(ctx, 1, 0x1000000, []byte("first")); err != nil {
		t.Fatalf("holder's write: %v", err)
	}
	if err := rdb.Del(ctx, "pgbackup:archiver-lease:{"+target+"}").Err(); err != nil {
		t.Fatal(err)
	}
	next, err := coord.NewArchiverLease(rdb, target, "next", time.Minute, 30*time.Second).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Release(context.Background())
	for name, put := range map[string]func() error{
		"chunk":   func() error { return a.PutPartial(ctx, 1, 0x1000005, []byte("second")) },
		"segment": func() error { return a.PutSegment(ctx, 1, 1, make([]byte, 16<<20)) },
		"history": func() error { return a.PutHistory(ctx, 2, []byte("1\t0/2000000\tno recovery target specified\n")) },
	} {
		if err := put(); !errors.Is(err, coord.ErrLeaseLost) {
			t.Errorf("%s after the token moved on: %v, want ErrLeaseLost", name, err)
		}
	}
	if n := len(mem.Chunks()); n != 1 {
		t.Errorf("%d chunks stored, want only the holder's first", n)
	}
}
