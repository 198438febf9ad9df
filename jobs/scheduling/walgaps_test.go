package scheduling

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/wal"
	"github.com/autograph/pgbackup/store"
)

const testSegSize = 1 << 20

func quietEntry() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// walFixture is a signed archive over one memory store, segments 1-3
// archived, watched by a WALWatcher whose alerts are recorded.
type walFixture struct {
	st  store.Store
	a   *wal.StoreArchive
	q   *recordingQueue
	w   *WALWatcher
	now time.Time
}

func newWALFixture(t *testing.T) *walFixture {
	t.Helper()
	f := &walFixture{st: store.NewMemory("m1"), q: &recordingQueue{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, err := wal.New(wal.Options{Target: "db1", Stores: []store.Store{f.st}, Codec: engine.DefaultCodec,
		Signer: engine.NewSigner([]byte("k")), SegmentSize: testSegSize, Log: quietEntry()})
	if err != nil {
		t.Fatal(err)
	}
	f.a = a
	for n := range uint64(3) {
		f.put(t, n+1)
	}
	f.w = &WALWatcher{Archive: "db1", Targets: []string{"db1"}, Scanner: a, StallAfter: time.Minute,
		Alerts: &alert.Alerter{URLs: []string{"http://hook.example/x"}, Queue: f.q}, Log: quietEntry(),
		Now: func() time.Time { return f.now }}
	return f
}

func (f *walFixture) put(t *testing.T, segno uint64) {
	t.Helper()
	b := make([]byte, testSegSize)
	_, _ = rand.Read(b)
	if err := f.a.PutSegment(context.Background(), 1, segno, b); err != nil {
		t.Fatal(err)
	}
}

func (f *walFixture) check(t *testing.T) {
	t.Helper()
	if err := f.w.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func (f *walFixture) events(kind string) []alert.Event {
	var out []alert.Event
	for _, e := range f.q.events {
		if e.Event == kind {
			out = append(out, e)
		}
	}
	return out
}

const seg2Key = "wal/db1/00000001/000000010000000000000002.zst"

// TestWALWatcherGapOnceWithRange: a deleted segment becomes one wal.gap
// alert naming its exact range, not one per check; putting it back sends
// one wal.gap.resolved; a whole archive raises nothing.
func TestWALWatcherGapOnceWithRange(t *testing.T) {
	t.Parallel()
	f := newWALFixture(t)
	f.check(t)
	if len(f.q.events) != 0 {
		t.Fatalf("alerts on a whole archive: %+v", f.q.events)
	}
	if err := f.st.Delete(context.Background(), seg2Key); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.check(t)
	}
	gaps := f.events(alert.EventWALGap)
	if len(gaps) != 1 {
		t.Fatalf("%d wal.gap alerts after three checks, want one: %+v", len(gaps), f.q.events)
	}
	if e := gaps[0]; e.Target != "db1" || !strings.Contains(e.Error, "timeline 1 0/200000-0/300000") {
		t.Errorf("alert %+v, want target db1 and range 0/200000-0/300000 of timeline 1", e)
	}
	f.put(t, 2)
	f.check(t)
	f.check(t)
	if r := f.events(alert.EventWALGapResolved); len(r) != 1 || !strings.Contains(r[0].Error, "0/200000-0/300000") {
		t.Fatalf("resolved events %+v, want one for the range", r)
	}
	if n := len(f.events(alert.EventWALGap)); n != 1 {
		t.Fatalf("%d wal.gap alerts after the fix, want still one", n)
	}
}

// TestWALWatcherTamperedSegment: a segment replaced by one whose signed
// header does not verify is a gap too, found from the listing (new ETag)
// although its header was cached by an earlier check.
func TestWALWatcherTamperedSegment(t *testing.T) {
	t.Parallel()
	f := newWALFixture(t)
	f.check(t)
	rc, err := f.st.Get(context.Background(), seg2Key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	i := strings.Index(string(b), `"raw_sha256":"`) + 14
	b[i] ^= 1
	if err := f.st.Put(context.Background(), seg2Key, strings.NewReader(string(b)), nil); err != nil {
		t.Fatal(err)
	}
	f.check(t)
	if g := f.events(alert.EventWALGap); len(g) != 1 || !strings.Contains(g[0].Error, seg2Key) {
		t.Fatalf("wal.gap alerts %+v, want one naming %s", g, seg2Key)
	}
}

// TestWALWatcherStall: an archive whose end stands still raises no alert
// while the server is idle (its WAL no further) or cannot be asked, and
// one wal.stalled once the server has written past the end for
// StallAfter; archiving again clears it.
func TestWALWatcherStall(t *testing.T) {
	t.Parallel()
	f := newWALFixture(t)
	server := wal.LSN(4 * testSegSize) // the archive's end: idle
	var serverErr error
	f.w.Server = func(context.Context) (wal.LSN, error) { return server, serverErr }
	step := func(d time.Duration) { f.now = f.now.Add(d); f.check(t) }
	step(0)
	step(10 * time.Minute)
	if len(f.q.events) != 0 {
		t.Fatalf("alerts for an idle server: %+v", f.q.events)
	}
	server += 100
	serverErr = errors.New("no password here")
	step(10 * time.Minute)
	if len(f.q.events) != 0 {
		t.Fatalf("alerts with the server unreachable: %+v", f.q.events)
	}
	serverErr = nil
	step(time.Second) // not asked again so soon after a failure
	if len(f.q.events) != 0 {
		t.Fatalf("alerts right after the server failed: %+v", f.q.events)
	}
	step(time.Minute) // the server is seen past the end: the clock starts
	step(time.Second)
	if len(f.q.events) != 0 {
		t.Fatalf("alerts a second after the server was first seen past the end: %+v", f.q.events)
	}
	step(time.Minute)
	if s := f.events(alert.EventWALStalled); len(s) != 1 || !strings.Contains(s[0].Error, "0/400064") {
		t.Fatalf("wal.stalled alerts %+v, want one naming the server's 0/400064", f.q.events)
	}
	f.put(t, 4)
	step(time.Second)      // the end moved
	step(30 * time.Second) // less than StallAfter since
	if n := len(f.events(alert.EventWALStalled)); n != 1 {
		t.Fatalf("%d wal.stalled alerts after archiving resumed, want still one", n)
	}
}

// TestWALWatcherIdleThenBurst: after an idle period longer than
// StallAfter (the end still, the server no further), the first writes are
// no stall: the clock starts when the server is first seen past the end,
// and an end that follows resets it; an end that then stands still for
// StallAfter behind the server is one.
func TestWALWatcherIdleThenBurst(t *testing.T) {
	t.Parallel()
	f := newWALFixture(t)
	server := wal.LSN(4 * testSegSize) // the archive's end: idle
	f.w.Server = func(context.Context) (wal.LSN, error) { return server, nil }
	step := func(d time.Duration) { f.now = f.now.Add(d); f.check(t) }
	step(0)
	step(10 * time.Minute)
	server += testSegSize / 2 // a burst
	step(time.Second)
	if len(f.q.events) != 0 {
		t.Fatalf("alerts at the first check of a burst after a long idle period: %+v", f.q.events)
	}
	f.put(t, 4) // the archiver follows
	step(50 * time.Second)
	server += testSegSize
	step(50 * time.Second)
	f.put(t, 5)
	step(50 * time.Second)
	if len(f.q.events) != 0 {
		t.Fatalf("alerts while the archive's end follows the server: %+v", f.q.events)
	}
	server += testSegSize
	step(time.Second)
	step(f.w.StallAfter)
	if n := len(f.events(alert.EventWALStalled)); n != 1 {
		t.Fatalf("%d wal.stalled once the end stood still behind the server for StallAfter, want 1: %+v", n, f.q.events)
	}
}

// TestServerFlushLSN asks the bench's real PostgreSQL: its flush position
// is past the start of WAL and does not go backwards after a write; a
// wrong password is an error (the watcher then raises no stall), not a
// zero position.
func TestServerFlushLSN(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	conn := benchConn(t)
	ask := ServerFlushLSN(conn)
	first, err := ask(t.Context())
	if err != nil || first == 0 {
		t.Fatalf("ServerFlushLSN = %s, %v; want a position", first, err)
	}
	env.Exec(t, env.PGDatabase, "CREATE TEMP TABLE walpos AS SELECT g FROM generate_series(1, 1000) g")
	second, err := ask(t.Context())
	if err != nil || second < first {
		t.Fatalf("after a write ServerFlushLSN = %s, %v; want at least %s", second, err, first)
	}
	conn.Password = "wrong"
	if l, err := ServerFlushLSN(conn)(t.Context()); err == nil {
		t.Fatalf("with a wrong password ServerFlushLSN = %s, want an error", l)
	}
}

// benchConn is the bench's PostgreSQL as its test role.
func benchConn(t *testing.T) pgtool.Conn {
	t.Helper()
	env := testbench.Require(t)
	port, err := strconv.Atoi(env.PGPort)
	if err != nil {
		t.Fatal(err)
	}
	return pgtool.Conn{Host: env.PGHost, Port: port, User: env.PGUser, Password: env.PGPassword, SSLMode: "disable", Database: env.PGDatabase}
}

// baseLister lists base backups of archive db1.
type baseLister []engine.Entry

func (l *baseLister) List(context.Context, []string) ([]engine.Entry, error) { return *l, nil }

func (l *baseLister) add(name, start, unverified string) {
	*l = append(*l, engine.Entry{Manifest: engine.Manifest{Name: engine.MustParseName(name), Content: engine.ContentBase, Target: "db1",
		FinishedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Base: &engine.BaseInfo{WALArchive: "db1", Timeline: 1, StartLSN: start, StopLSN: start}},
		Unverified: unverified})
}

// gapRecorder keeps what the watcher published.
type gapRecorder struct {
	targets []string
	gaps    int
	oldest  string
	calls   int
}

func (r *gapRecorder) RecordWALGaps(_ context.Context, targets []string, gaps int, oldest string, _ time.Time) error {
	r.targets, r.gaps, r.oldest, r.calls = targets, gaps, oldest, r.calls+1
	return nil
}

// TestWALWatcherCountsFromTheOldestBaseBackup: while no trusted base
// backup exists the whole archive is watched; once one does, a gap wholly
// before its start is needed by no restore (not alerted, and resolved if
// it was), one after it is alerted; the count of gaps and the archive's
// start are published each check.
func TestWALWatcherCountsFromTheOldestBaseBackup(t *testing.T) {
	t.Parallel()
	f := newWALFixture(t)
	f.put(t, 4)
	f.put(t, 5)
	bases := &baseLister{}
	rec := &gapRecorder{}
	f.w.Backups, f.w.State = bases, rec
	bases.add("b_forged", "0/500028", "signature missing") // untrusted: bounds nothing
	if err := f.st.Delete(context.Background(), seg2Key); err != nil {
		t.Fatal(err)
	}
	f.check(t)
	if g := f.events(alert.EventWALGap); len(g) != 1 || rec.gaps != 1 || rec.oldest != "0/100000" {
		t.Fatalf("no trusted base backup: alerts %+v, published %+v; want the gap at segment 2 alerted and counted", f.q.events, rec)
	}
	bases.add("b_1", "0/300028", "")
	f.check(t)
	if r := f.events(alert.EventWALGapResolved); len(r) != 1 || rec.gaps != 0 {
		t.Fatalf("base backup from segment 3: resolved %+v, published %d gaps; want the gap before it resolved and none counted", r, rec.gaps)
	}
	if err := f.st.Delete(context.Background(), "wal/db1/00000001/000000010000000000000004.zst"); err != nil {
		t.Fatal(err)
	}
	f.check(t)
	g := f.events(alert.EventWALGap)
	if len(g) != 2 || !strings.Contains(g[1].Error, "0/400000-0/500000") || rec.gaps != 1 || strings.Join(rec.targets, ",") != "db1" {
		t.Fatalf("gap after the base backup: alerts %+v, published %+v; want one more naming 0/400000-0/500000", g, rec)
	}
}
