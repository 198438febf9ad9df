package wal_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/wal"
	"github.com/autograph/pgbackup/store"
)

// segSize is the smallest segment size PostgreSQL allows, to keep tests fast.
const segSize = 1 << 20

var ctx = context.Background()

type fixture struct {
	stores []store.Store
	a      *wal.StoreArchive
	opts   wal.Options
}

// newFixture returns an archive encrypted, compressed and signed, over
// fresh memory stores (one unless told).
func newFixture(t *testing.T, stores ...store.Store) *fixture {
	t.Helper()
	if len(stores) == 0 {
		stores = []store.Store{store.NewMemory("m1")}
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := engine.NewEncryption([]string{id.Recipient().String()}, strings.NewReader(id.String()))
	if err != nil {
		t.Fatal(err)
	}
	o := wal.Options{
		Target: "db1", Stores: stores, Codec: engine.DefaultCodec, Encryption: enc,
		Signer: engine.NewSigner([]byte("test signing key")), SegmentSize: segSize,
		Log: quietLog(),
	}
	return &fixture{stores: stores, a: mustNew(t, o), opts: o}
}

func mustNew(t *testing.T, o wal.Options) *wal.StoreArchive {
	t.Helper()
	a, err := wal.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func seg(n uint64) wal.LSN { return wal.LSN(n * segSize) }

func keys(t *testing.T, s store.Store) []string {
	t.Helper()
	objs, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

func mustPutSegment(t *testing.T, a wal.Archive, tli uint32, segno uint64) []byte {
	t.Helper()
	data := randomBytes(t, segSize)
	if err := a.PutSegment(ctx, tli, segno, data); err != nil {
		t.Fatalf("PutSegment %d/%d: %v", tli, segno, err)
	}
	return data
}

func mustPutPartial(t *testing.T, a wal.Archive, tli uint32, start, end wal.LSN) []byte {
	t.Helper()
	data := randomBytes(t, int(end-start))
	if err := a.PutPartial(ctx, tli, start, data); err != nil {
		t.Fatalf("PutPartial %d %s-%s: %v", tli, start, end, err)
	}
	return data
}

func mustEnd(t *testing.T, a wal.Archive) wal.Position {
	t.Helper()
	p, err := a.End(ctx)
	if err != nil {
		t.Fatalf("End: %v", err)
	}
	return p
}

func mustVerify(t *testing.T, a *wal.StoreArchive) []wal.Chain {
	t.Helper()
	c, err := a.Verify(ctx)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return c
}

func TestSegmentNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		tli     uint32
		segno   uint64
		segSize uint64
		want    string
	}{
		{"first", 1, 1, 16 << 20, "000000010000000000000001"},
		{"16MiB wraps at 256", 2, 0x1FF, 16 << 20, "0000000200000001000000FF"},
		{"1MiB wraps at 4096", 1, 4097, 1 << 20, "000000010000000100000001"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := wal.SegmentName(c.tli, c.segno, c.segSize); got != c.want {
				t.Fatalf("SegmentName = %s, want %s", got, c.want)
			}
			tli, segno, err := wal.ParseSegmentName(c.want, c.segSize)
			if err != nil || tli != c.tli || segno != c.segno {
				t.Fatalf("ParseSegmentName = %d, %d, %v; want %d, %d", tli, segno, err, c.tli, c.segno)
			}
		})
	}
}

// TestLayout pins the documented keys (docs/architecture.md, "WAL archive").
func TestLayout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mustPutSegment(t, f.a, 1, 3)
	mustPutPartial(t, f.a, 1, seg(4), seg(4)+100)
	if err := f.a.PutHistory(ctx, 2, []byte("1\t0/400064\tno recovery target specified\n")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"wal/db1/00000001/000000010000000000000003.zst.age",
		"wal/db1/00000001/partial/000000010000000000000004/0000000000400000-0000000000400064.zst.age",
		"wal/db1/00000002.history.zst.age",
	}
	if got := keys(t, f.stores[0]); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys:\n got %q\nwant %q", got, want)
	}
	// Each object starts with its signed header line.
	rc, err := f.stores[0].Get(ctx, want[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 64)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(head, []byte(`{"format":"pgbackup-wal/1"`)) {
		t.Fatalf("object starts %q, want the header", head)
	}
}

// TestNoRewrite: the same WAL again is a no-op (the object is not
// written again, even with another codec); other WAL is ErrConflict.
func TestNoRewrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	data := mustPutSegment(t, f.a, 1, 1)
	chunk := mustPutPartial(t, f.a, 1, seg(2), seg(2)+500)
	before, _ := f.stores[0].List(ctx, "")
	if err := f.a.PutSegment(ctx, 1, 1, data); err != nil {
		t.Fatalf("same segment again: %v", err)
	}
	if err := f.a.PutPartial(ctx, 1, seg(2), chunk); err != nil {
		t.Fatalf("same chunk again: %v", err)
	}
	plain := f.opts
	plain.Codec, plain.Encryption = engine.Codec{}, nil
	if err := mustNew(t, plain).PutSegment(ctx, 1, 1, data); err != nil {
		t.Fatalf("same segment with another codec: %v", err)
	}
	after, _ := f.stores[0].List(ctx, "")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("objects were rewritten or added:\nbefore %v\n after %v", before, after)
	}
	other := bytes.Clone(data)
	other[100]++
	if err := f.a.PutSegment(ctx, 1, 1, other); !errors.Is(err, wal.ErrConflict) {
		t.Fatalf("other content: err = %v, want ErrConflict", err)
	}
	if err := f.a.PutPartial(ctx, 1, seg(2), chunk[:499]); err != nil {
		t.Fatalf("a shorter chunk is another range, stored: %v", err)
	}
	chunk[0]++
	if err := f.a.PutPartial(ctx, 1, seg(2), chunk); !errors.Is(err, wal.ErrConflict) {
		t.Fatalf("other chunk content: err = %v, want ErrConflict", err)
	}
}

func TestPutRejectsBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.a.PutSegment(ctx, 1, 0, make([]byte, 10)); err == nil {
		t.Error("short segment accepted")
	}
	if err := f.a.PutPartial(ctx, 1, seg(1)-10, make([]byte, 20)); err == nil {
		t.Error("chunk across a segment boundary accepted")
	}
	if err := f.a.PutHistory(ctx, 2, []byte("garbage")); err == nil {
		t.Error("history without an entry accepted")
	}
	if _, err := wal.New(wal.Options{Target: "../x", Stores: f.stores, Log: f.opts.Log}); err == nil {
		t.Error("escaping target accepted")
	}
}

func TestEndWithSegmentsAndChunks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if got := mustEnd(t, f.a); got != (wal.Position{}) {
		t.Fatalf("empty archive: End = %+v, want zero", got)
	}
	mustPutSegment(t, f.a, 1, 5)
	mustPutSegment(t, f.a, 1, 6)
	if got, want := mustEnd(t, f.a), (wal.Position{Timeline: 1, LSN: seg(7)}); got != want {
		t.Fatalf("End = %+v, want %+v", got, want)
	}
	mustPutPartial(t, f.a, 1, seg(7), seg(7)+100)
	mustPutPartial(t, f.a, 1, seg(7)+100, seg(7)+300)
	// An archiver that resumed inside a chunk writes an overlapping one.
	mustPutPartial(t, f.a, 1, seg(7)+200, seg(7)+4000)
	if got, want := mustEnd(t, f.a), (wal.Position{Timeline: 1, LSN: seg(7) + 4000}); got != want {
		t.Fatalf("End = %+v, want %+v", got, want)
	}
	// The segment completes: chunks and segment both cover it.
	mustPutSegment(t, f.a, 1, 7)
	if got, want := mustEnd(t, f.a), (wal.Position{Timeline: 1, LSN: seg(8)}); got != want {
		t.Fatalf("End = %+v, want %+v", got, want)
	}
	for _, c := range mustVerify(t, f.a) {
		if len(c.Gaps) > 0 || c.Segments != 3 || c.Chunks != 3 || c.Start != (wal.Position{Timeline: 1, LSN: seg(5)}) {
			t.Fatalf("chain %+v, want 3 segments, 3 chunks from segment 5, no gap", c)
		}
	}
}

// TestEndOverStores: the archive ends where the store that holds least
// ends, so resuming there leaves no store with a hole.
func TestEndOverStores(t *testing.T) {
	t.Parallel()
	m1, m2 := store.NewMemory("m1"), store.NewMemory("m2")
	f := newFixture(t, m1, m2)
	mustPutSegment(t, f.a, 1, 1)
	mustPutPartial(t, f.a, 1, seg(2), seg(2)+100)
	only1 := f.opts
	only1.Stores = []store.Store{m1}
	mustPutPartial(t, mustNew(t, only1), 1, seg(2)+100, seg(2)+200)
	if got, want := mustEnd(t, f.a), (wal.Position{Timeline: 1, LSN: seg(2) + 100}); got != want {
		t.Fatalf("End = %+v, want %+v (m2's end)", got, want)
	}
}

// expectGap asserts that chains hold exactly one gap, the one described.
func expectGap(t *testing.T, chains []wal.Chain, want wal.Gap, reason string) {
	t.Helper()
	var gaps []wal.Gap
	for _, c := range chains {
		gaps = append(gaps, c.Gaps...)
	}
	if len(gaps) != 1 {
		t.Fatalf("gaps = %v, want one: %s", gaps, reason)
	}
	g := gaps[0]
	if g.Store != want.Store || g.Timeline != want.Timeline || g.Start != want.Start || g.End != want.End ||
		!strings.Contains(g.Reason, reason) || g.Key != want.Key {
		t.Fatalf("gap = %v, want %v with reason %q", g, want, reason)
	}
}

func TestGaps(t *testing.T) {
	t.Parallel()
	segKey := func(n int) string { return fmt.Sprintf("wal/db1/00000001/0000000100000000000000%02X.zst.age", n) }
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, s store.Store)
		gap    wal.Gap
		reason string
		end    wal.Position
	}{
		{"deleted segment", func(t *testing.T, s store.Store) {
			if err := s.Delete(ctx, segKey(2)); err != nil {
				t.Fatal(err)
			}
		}, wal.Gap{Store: "m1", Timeline: 1, Start: seg(2), End: seg(3)}, "not archived", wal.Position{Timeline: 1, LSN: seg(2)}},
		{"chunk hole", func(t *testing.T, s store.Store) {
			if err := s.Delete(ctx, "wal/db1/00000001/partial/000000010000000000000004/0000000000400064-00000000004000C8.zst.age"); err != nil {
				t.Fatal(err)
			}
		}, wal.Gap{Store: "m1", Timeline: 1, Start: seg(4) + 100, End: seg(4) + 200}, "not archived", wal.Position{Timeline: 1, LSN: seg(4) + 100}},
		{"tampered payload", func(t *testing.T, s store.Store) {
			tamper(t, s, segKey(2), func(b []byte) { b[len(b)-10] ^= 1 })
		}, wal.Gap{Store: "m1", Timeline: 1, Start: seg(2), End: seg(3), Key: segKey(2)}, "payload does not match", wal.Position{Timeline: 1, LSN: seg(3)}},
		{"tampered header", func(t *testing.T, s store.Store) {
			tamper(t, s, segKey(3), func(b []byte) { copy(b[bytes.Index(b, []byte(`"raw_sha256":"`))+14:], "00") })
		}, wal.Gap{Store: "m1", Timeline: 1, Start: seg(3), End: seg(4), Key: segKey(3)}, "signature", wal.Position{Timeline: 1, LSN: seg(3)}},
		{"object moved to another key", func(t *testing.T, s store.Store) {
			copyObject(t, s, segKey(1), segKey(2))
		}, wal.Gap{Store: "m1", Timeline: 1, Start: seg(2), End: seg(3), Key: segKey(2)}, "not this key", wal.Position{Timeline: 1, LSN: seg(2)}},
		{"last chunk tampered", func(t *testing.T, s store.Store) {
			tamper(t, s, "wal/db1/00000001/partial/000000010000000000000004/00000000004000C8-000000000040012C.zst.age", func(b []byte) { b[len(b)-1] ^= 1 })
		}, wal.Gap{Store: "m1", Timeline: 1, Start: seg(4) + 200, End: seg(4) + 300,
			Key: "wal/db1/00000001/partial/000000010000000000000004/00000000004000C8-000000000040012C.zst.age"}, "payload does not match", wal.Position{Timeline: 1, LSN: seg(4) + 300}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			for n := range uint64(3) {
				mustPutSegment(t, f.a, 1, n+1)
			}
			for _, r := range [][2]wal.LSN{{0, 100}, {100, 200}, {200, 300}} {
				mustPutPartial(t, f.a, 1, seg(4)+r[0], seg(4)+r[1])
			}
			for _, ch := range mustVerify(t, f.a) {
				if len(ch.Gaps) > 0 {
					t.Fatalf("before damage: gaps %v", ch.Gaps)
				}
			}
			// Scan before the damage fills the header cache: the scan
			// after must still see a replaced object (its new ETag).
			if _, err := f.a.Scan(ctx); err != nil {
				t.Fatal(err)
			}
			c.damage(t, f.stores[0])
			expectGap(t, mustVerify(t, f.a), c.gap, c.reason)
			scanned, err := f.a.Scan(ctx)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			// A payload altered under an intact header is Verify's to
			// find; every other damage shows in the listing and headers.
			if strings.Contains(c.reason, "payload") {
				for _, ch := range scanned {
					if len(ch.Gaps) > 0 {
						t.Fatalf("Scan found %v: it was not to read payloads", ch.Gaps)
					}
				}
			} else {
				expectGap(t, scanned, c.gap, c.reason)
			}
			// End stops at the first gap; a tampered payload is found
			// only by reading it whole (Verify), End trusts the header.
			fresh := mustNew(t, f.opts)
			wantEnd := c.gap.Start
			if strings.Contains(c.reason, "payload") {
				wantEnd = seg(4) + 300
			}
			if got := mustEnd(t, fresh); got != (wal.Position{Timeline: 1, LSN: wantEnd}) {
				t.Fatalf("End = %+v, want %s", got, wantEnd)
			}
		})
	}
}

func tamper(t *testing.T, s store.Store, key string, change func([]byte)) {
	t.Helper()
	b := get(t, s, key)
	change(b)
	if err := s.Put(ctx, key, bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
}

func copyObject(t *testing.T, s store.Store, from, to string) {
	t.Helper()
	if err := s.Put(ctx, to, bytes.NewReader(get(t, s, from)), nil); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s store.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quietLog is a logger that keeps the test output to failures.
func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}
