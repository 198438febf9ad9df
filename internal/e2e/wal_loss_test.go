package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/wal"
	"github.com/autograph/pgbackup/store"
)

// lossPartialInterval is the archiver's WAL_PARTIAL_INTERVAL in the loss
// test: the bound it asserts is this plus lossSlack.
const (
	lossPartialInterval = time.Second
	lossSlack           = 2 * time.Second
	// stmtTimeout bounds each statement of the marker writer.
	stmtTimeout = 30 * time.Second
)

// marker is one row the writer committed: its text is unique, so its
// bytes in the archived WAL show that its INSERT record was archived.
type marker struct {
	text  string
	xid   string    // its transaction's id, to find its COMMIT record
	acked time.Time // when COMMIT returned to the client
}

// markerWriter commits one marker row every 100 ms, each in its own
// transaction, until the connection fails (the server is killed) or ctx
// ends; markers lists those whose COMMIT was acknowledged, in order.
type markerWriter struct {
	mu      sync.Mutex
	markers []marker
	done    chan struct{}
	err     error
}

func startMarkerWriter(ctx context.Context, t *testing.T, conn *pgx.Conn, prefix string) *markerWriter {
	t.Helper()
	// Each statement is bounded: with sync, a commit the archiver never
	// confirms would otherwise hang the test instead of failing it.
	cctx, cancel := context.WithTimeout(ctx, stmtTimeout)
	defer cancel()
	if _, err := conn.Exec(cctx, "CREATE TABLE loss_markers (id int PRIMARY KEY, m text NOT NULL)"); err != nil {
		t.Fatalf("create the marker table (its commit unconfirmed after %s?): %v", stmtTimeout, err)
	}
	w := &markerWriter{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			text := fmt.Sprintf("%s-%06d-end", prefix, i)
			// Autocommit: the row is read once the COMMIT is acknowledged.
			var xid string
			ictx, cancel := context.WithTimeout(ctx, stmtTimeout)
			err := conn.QueryRow(ictx, "INSERT INTO loss_markers VALUES ($1, $2) RETURNING pg_current_xact_id()::text", i, text).Scan(&xid)
			cancel()
			if err != nil {
				w.err = err
				return
			}
			w.mu.Lock()
			w.markers = append(w.markers, marker{text: text, xid: xid, acked: time.Now()})
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *markerWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.markers)
}

// waitMarkers waits until the writer has committed n markers, failing the
// test if it stops first.
func (w *markerWriter) waitMarkers(t *testing.T, n int) {
	t.Helper()
	err := harness.Poll(t.Context(), 60*time.Second, 20*time.Millisecond, func() (bool, error) {
		select {
		case <-w.done:
			return false, fmt.Errorf("the writer stopped: %w", w.err)
		default:
		}
		return w.count() >= n, nil
	})
	if err != nil {
		t.Fatalf("the writer committed %d markers, want %d: %v", w.count(), n, err)
	}
}

// killPostmaster SIGKILLs the PostgreSQL whose superuser connection is su,
// found from postmaster.pid in its data directory, and returns when.
func killPostmaster(t *testing.T, su *pgx.Conn) time.Time {
	t.Helper()
	var dataDir string
	if err := su.QueryRow(t.Context(), "SHOW data_directory").Scan(&dataDir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatalf("read postmaster.pid: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 1 {
		t.Fatalf("postmaster.pid starts with %q", first)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 postmaster %d: %v", pid, err)
	}
	return time.Now()
}

// archivedWAL reads the target's archive in store st back through
// jobs/wal, each segment verified, and returns its WAL bytes from its
// start to its contiguous end; nothing when the archive is empty.
func archivedWAL(t *testing.T, st store.Store) []byte {
	t.Helper()
	a, err := wal.New(wal.Options{Target: walTarget, Stores: []store.Store{st}, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	chains, err := a.Scan(t.Context())
	if err != nil || len(chains) != 1 {
		t.Fatalf("scan the archive: %d chains, %v", len(chains), err)
	}
	c := chains[0]
	if c.Segments+c.Chunks == 0 {
		return nil
	}
	end := c.Contiguous()
	if end.Timeline != c.Start.Timeline || end.LSN <= c.Start.LSN {
		t.Fatalf("archive from %+v to %+v: nothing on one timeline", c.Start, end)
	}
	segSize := a.SegmentSize()
	var all []byte
	for segno := uint64(c.Start.LSN) / segSize; segno*segSize < uint64(end.LSN); segno++ {
		seg, err := a.Open(t.Context(), end.Timeline, segno)
		if err != nil {
			t.Fatalf("open archived segment %d: %v", segno, err)
		}
		data := seg.Data
		if limit := uint64(end.LSN) - segno*segSize; limit < uint64(len(data)) {
			data = data[:limit]
		}
		all = appendWithoutPageHeaders(all, data)
	}
	return all
}

// WAL page layout (PostgreSQL's defaults, those of Debian's packages): a
// record crossing a page boundary is split by the next page's header, so
// a marker's text is searched for in the WAL with the headers taken out.
const (
	walPageSize       = 8192
	walShortPageHead  = 24 // XLogPageHeaderData, MAXALIGNed
	walLongPageHeader = 40 // XLogLongPageHeaderData: a segment's first page
)

// appendWithoutPageHeaders appends a segment's bytes (from its start) to
// dst without each page's header.
func appendWithoutPageHeaders(dst, seg []byte) []byte {
	for off := 0; off < len(seg); off += walPageSize {
		head := walShortPageHead
		if off == 0 {
			head = walLongPageHeader
		}
		page := seg[off:min(off+walPageSize, len(seg))]
		if len(page) > head {
			dst = append(dst, page[head:]...)
		}
	}
	return dst
}

// TestWALLossOnServerKill: a writer commits a marker row every 100 ms, the
// server is SIGKILLed at a random moment, and every marker whose COMMIT
// returned more than WAL_PARTIAL_INTERVAL + 2 s before the kill is in the
// archive. It logs the measured loss: the kill time minus the
// acknowledgement of the newest marker proven archived.
//
// A marker is proven archived when its unique text and the next marker's
// are both in the archived WAL up to the archive's contiguous end: the
// writer starts marker i+1 only after marker i's COMMIT returned, so the
// INSERT record of i+1 follows the COMMIT record of i in the WAL, and the
// archive holds every byte before its end. (A full-page image holding a
// marker's text is written only after the marker's own INSERT record, so
// it proves no more than the record itself would.)
func TestWALLossOnServerKill(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	arch := p.start("archiver", harness.Archiver, "WAL_PARTIAL_INTERVAL="+lossPartialInterval.String())
	if err := arch.WaitLog(t.Context(), "lease taken", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The writer uses a connection of its own: p.su reads postmaster.pid.
	wconn, err := pgx.Connect(t.Context(), p.su.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wconn.Close(context.Background()) })
	prefix := testbench.UniqueName("loss_marker")
	w := startMarkerWriter(t.Context(), t, wconn, prefix)

	// Kill at a random moment once enough markers lie before the bound.
	want := 40 + rand.IntN(40) // 4 to 8 s of markers
	w.waitMarkers(t, want)
	killed := killPostmaster(t, p.su)
	<-w.done
	if w.err == nil {
		t.Fatal("the writer went on after the kill")
	}
	// Stopping cleanly lets the archiver upload what it received and had
	// not yet uploaded; it cannot receive more from a dead server.
	stopCleanly(t, arch)

	archived := archivedWAL(t, p.minio())
	in := func(m marker) bool { return bytes.Contains(archived, []byte(m.text)) }
	bound := killed.Add(-(lossPartialInterval + lossSlack))
	var newest *marker
	required := 0
	for i, m := range w.markers[:len(w.markers)-1] {
		proven := in(m) && in(w.markers[i+1])
		if proven {
			newest = &w.markers[i]
		}
		if m.acked.Before(bound) {
			required++
			if !proven {
				t.Errorf("marker %d (committed %s before the kill) is not in the archive",
					i, killed.Sub(m.acked).Round(time.Millisecond))
			}
		}
	}
	if required == 0 {
		t.Fatalf("no marker committed before %s: the test proves nothing", bound)
	}
	if newest == nil {
		t.Fatal("no marker in the archive")
	}
	t.Logf("%d markers acknowledged, %d required; measured loss: %s (kill time minus the newest archived marker's commit), bound %s",
		len(w.markers), required, killed.Sub(newest.acked).Round(10*time.Millisecond), lossPartialInterval+lossSlack)
	if errors.Is(w.err, context.Canceled) {
		t.Fatalf("the writer stopped on the test's end, not the kill: %v", w.err)
	}
}

// archivedCommits writes the target's archived segments, read back
// verified through jobs/wal, to a directory under their own names and
// returns the transaction ids whose COMMIT record pg_waldump finds there,
// up to the archive's contiguous end.
func archivedCommits(t *testing.T, st store.Store, pgMajor int) map[string]bool {
	t.Helper()
	a, err := wal.New(wal.Options{Target: walTarget, Stores: []store.Store{st}, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	chains, err := a.Scan(t.Context())
	if err != nil || len(chains) != 1 || chains[0].Segments+chains[0].Chunks == 0 {
		t.Fatalf("scan the archive: %+v, %v", chains, err)
	}
	c, dir, segSize := chains[0], t.TempDir(), a.SegmentSize()
	end := c.Contiguous()
	for segno := uint64(c.Start.LSN) / segSize; segno*segSize < uint64(end.LSN); segno++ {
		seg, err := a.Open(t.Context(), end.Timeline, segno)
		if err != nil {
			t.Fatalf("open archived segment %d: %v", segno, err)
		}
		if err := os.WriteFile(filepath.Join(dir, wal.SegmentName(end.Timeline, segno, segSize)), seg.Data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := fmt.Sprintf("/usr/lib/postgresql/%d/bin/pg_waldump", pgMajor)
	cmd := exec.CommandContext(t.Context(), bin, "-p", dir, "-r", "Transaction", "-s", c.Start.LSN.String(), "-e", end.LSN.String())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// pg_waldump exits 1 when the last record runs past -e; what it
	// printed before is still every record it decoded.
	if err := cmd.Run(); err != nil && out.Len() == 0 {
		t.Fatalf("pg_waldump: %v: %s", err, errb.String())
	}
	commits := map[string]bool{}
	for _, m := range commitRecord.FindAllStringSubmatch(out.String(), -1) {
		commits[m[1]] = true
	}
	if len(commits) == 0 {
		t.Fatalf("pg_waldump found no COMMIT in the archive (%s to %s): %s", c.Start.LSN, end.LSN, errb.String())
	}
	return commits
}

var commitRecord = regexp.MustCompile(`(?m)^rmgr: Transaction .*\btx:\s+(\d+),.* desc: COMMIT\b`)

// TestWALNoLossWithSync: with `sync: true` and the archiver listed in
// synchronous_standby_names, a SIGKILLed server loses no acknowledged
// marker: each marker's row text and its transaction's COMMIT record
// (found by pg_waldump in the archived WAL) are in the archive. The
// partial interval is an hour, so only the sync path can have stored them.
func TestWALNoLossWithSync(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t, `,"sync":true`)
	arch := p.start("archiver", harness.Archiver, "WAL_PARTIAL_INTERVAL=1h")
	if err := arch.WaitLog(t.Context(), "lease taken", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	app := "pgbackup_" + walTarget // the slot's name, the archiver's application_name
	if _, err := p.su.Exec(ctx, fmt.Sprintf(`ALTER SYSTEM SET synchronous_standby_names = '"%s"'`, app)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.su.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	if err := harness.Poll(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		var n int
		err := p.su.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND sync_state = 'sync'", app).Scan(&n)
		return err == nil && n == 1, nil
	}); err != nil {
		t.Fatalf("the archiver never became the synchronous standby %s: %v", app, err)
	}
	var versionNum int
	if err := p.su.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&versionNum); err != nil {
		t.Fatal(err)
	}

	wconn, err := pgx.Connect(ctx, p.su.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wconn.Close(context.Background()) })
	w := startMarkerWriter(ctx, t, wconn, testbench.UniqueName("sync_marker"))
	want := 20 + rand.IntN(30)
	w.waitMarkers(t, want)
	killPostmaster(t, p.su)
	<-w.done
	if w.err == nil || errors.Is(w.err, context.Canceled) {
		t.Fatalf("the writer did not stop on the kill: %v", w.err)
	}
	stopCleanly(t, arch)

	archived := archivedWAL(t, p.minio())
	commits := archivedCommits(t, p.minio(), versionNum/10000)
	for i, m := range w.markers {
		if !bytes.Contains(archived, []byte(m.text)) || !commits[m.xid] {
			t.Errorf("acknowledged marker %d (xid %s) not in the archive: row %t, commit %t",
				i, m.xid, bytes.Contains(archived, []byte(m.text)), commits[m.xid])
		}
	}
	t.Logf("%d acknowledged markers, every one with its COMMIT in the archive: loss 0", len(w.markers))
}
