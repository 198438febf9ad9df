// Package storetest holds the contract every store.Store backend must meet.
// Each backend's test calls Run with a constructor; the same cases run
// against the local directory and the real MinIO server.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/store"
)

// MultiPartSize is larger than the 5 MiB part size the contract's MinIO
// store is built with, so the round trip crosses part boundaries.
const MultiPartSize = 12<<20 + 12345

// Run exercises the Store contract. newStore must return an empty store
// that no other test uses.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newStore(t))
		})
	}
}

// cases are the contract, one function per promise a backend makes.
var cases = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"RoundTripMultiPart", testRoundTripMultiPart},
	{"OverwriteIsIdempotent", testOverwriteIsIdempotent},
	{"ListByPrefix", testListByPrefix},
	{"NotFound", testNotFound},
	{"Delete", testDelete},
	{"CancelMidUploadPublishesNothing", testCancelMidUploadPublishesNothing},
	{"ReaderErrorPublishesNothing", testReaderErrorPublishesNothing},
	{"ETagFollowsContent", testETagFollowsContent},
	{"RejectsEscapingKeys", testRejectsEscapingKeys},
}

func testRoundTripMultiPart(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := randomBytes(t, MultiPartSize)
	if err := s.Put(ctx, "postgres/big.dump", bytes.NewReader(want), nil); err != nil {
		t.Fatalf("Put: %v", err)
	}
	rc, err := s.Get(ctx, "postgres/big.dump")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("round trip: got %d bytes, want %d identical bytes", len(got), len(want))
	}
	info, err := s.Stat(ctx, "postgres/big.dump")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Size != int64(len(want)) || info.Key != "postgres/big.dump" {
		t.Fatalf("Stat = %+v, want key postgres/big.dump size %d", info, len(want))
	}
}

func testOverwriteIsIdempotent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, "postgres/a.sql", "first version")
	mustPut(t, s, "postgres/a.sql", "second")
	if got := mustGet(t, s, "postgres/a.sql"); got != "second" {
		t.Fatalf("after overwrite got %q, want %q", got, "second")
	}
	objs, err := s.List(ctx, "postgres/")
	if err != nil || len(objs) != 1 {
		t.Fatalf("List after overwrite = %v, %v; want exactly one object", objs, err)
	}
}

func testListByPrefix(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, k := range []string{"postgres/b.dump", "postgres/a.dump", "postgres/a.manifest.json", "other/x.dump", "postgresql/y"} {
		mustPut(t, s, k, "data of "+k)
	}
	objs, err := s.List(ctx, "postgres/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
		if o.Size != int64(len("data of "+o.Key)) {
			t.Errorf("List size of %s = %d, want %d", o.Key, o.Size, len("data of "+o.Key))
		}
	}
	want := "postgres/a.dump,postgres/a.manifest.json,postgres/b.dump"
	if got := strings.Join(keys, ","); got != want {
		t.Fatalf("List(postgres/) = %s, want %s", got, want)
	}
	objs, err = s.List(ctx, "postgres/a")
	if err != nil || len(objs) != 2 {
		t.Fatalf("List(postgres/a) = %v, %v; want 2 objects", objs, err)
	}
	objs, err = s.List(ctx, "nothing/")
	if err != nil || len(objs) != 0 {
		t.Fatalf("List(nothing/) = %v, %v; want empty", objs, err)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "postgres/missing.dump"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want store.ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "postgres/missing.dump"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat missing: err = %v, want store.ErrNotFound", err)
	}
	if err := s.Delete(ctx, "postgres/missing.dump"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete missing: err = %v, want store.ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, "postgres/d.tar", "tar bytes")
	mustPut(t, s, "postgres/keep.tar", "keep")
	if err := s.Delete(ctx, "postgres/d.tar"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, "postgres/d.tar"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Stat after Delete: err = %v, want store.ErrNotFound", err)
	}
	if got := mustGet(t, s, "postgres/keep.tar"); got != "keep" {
		t.Fatalf("other object changed by Delete: got %q", got)
	}
}

func testCancelMidUploadPublishesNothing(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The reader hands out more than one part, then cancels and keeps
	// producing, as pg_dump would while the task is being cancelled.
	r := &cancellingReader{limit: 7 << 20, cancel: cancel}
	err := s.Put(ctx, "postgres/cancelled.dump", r, nil)
	if err == nil {
		t.Fatal("Put with cancelled context returned nil error")
	}
	assertAbsent(t, s, "postgres/cancelled.dump")
}

func testReaderErrorPublishesNothing(t *testing.T, s store.Store) {
	boom := errors.New("pg_dump exited 1")
	r := io.MultiReader(bytes.NewReader(randomBytes(t, 6<<20)), errReader{boom})
	err := s.Put(context.Background(), "postgres/failed.dump", r, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("Put with failing reader: err = %v, want it to wrap %v", err, boom)
	}
	assertAbsent(t, s, "postgres/failed.dump")
}

func testETagFollowsContent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, "postgres/e.json", "first")
	first, err := s.Stat(ctx, "postgres/e.json")
	if err != nil || first.ETag == "" {
		t.Fatalf("Stat = %+v, %v; want an ETag", first, err)
	}
	listed, err := s.List(ctx, "postgres/e")
	if err != nil || len(listed) != 1 || listed[0].ETag != first.ETag {
		t.Fatalf("List = %+v, %v; want the ETag Stat gave (%s)", listed, err, first.ETag)
	}
	// Same size, other content: the ETag must still change.
	time.Sleep(2 * time.Millisecond)
	mustPut(t, s, "postgres/e.json", "other")
	second, err := s.Stat(ctx, "postgres/e.json")
	if err != nil || second.ETag == first.ETag {
		t.Fatalf("ETag after a new Put = %q (was %q), %v; want it changed", second.ETag, first.ETag, err)
	}
}

func testRejectsEscapingKeys(t *testing.T, s store.Store) {
	for _, k := range []string{"../x", "postgres/../../etc/passwd", "/abs", "a//b", "", "a/./b", "nul\x00"} {
		if err := s.Put(context.Background(), k, strings.NewReader("x"), nil); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", k)
		}
		if _, err := s.Get(context.Background(), k); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q) err = %v, want a key validation error", k, err)
		}
	}
}

func assertAbsent(t *testing.T, s store.Store, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Stat(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat(%s) after failed Put: err = %v, want store.ErrNotFound", key, err)
	}
	objs, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(objs) != 0 {
		t.Errorf("List after failed Put = %v, want nothing listed", objs)
	}
}

func mustPut(t *testing.T, s store.Store, key, data string) {
	t.Helper()
	if err := s.Put(context.Background(), key, strings.NewReader(data), nil); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func mustGet(t *testing.T, s store.Store, key string) string {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(b)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type cancellingReader struct {
	n, limit int
	cancel   func()
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		c.cancel()
		// Give the uploader a moment to notice, then keep producing: the
		// store, not the reader, must stop the upload.
		time.Sleep(10 * time.Millisecond)
	}
	if c.n > 64<<20 {
		return 0, io.EOF // a store that ignores ctx entirely ends here, and fails the test
	}
	for i := range p {
		p[i] = byte(c.n + i)
	}
	c.n += len(p)
	return len(p), nil
}
