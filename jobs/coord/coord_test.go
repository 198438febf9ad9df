package coord

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

func TestLocksAgainstRedis(t *testing.T) {
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 15})
	defer rdb.Close()
	l := NewLocks(rdb)
	ctx := context.Background()
	key := testbench.UniqueName("lockdb")
	if err := l.Acquire(ctx, tasks.ScopeRestore, key, "task-a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx, tasks.ScopeRestore, key, "task-a", time.Minute); err != nil {
		t.Fatalf("holder re-acquiring: %v", err)
	}
	err := l.Acquire(ctx, tasks.ScopeRestore, key, "task-b", time.Minute)
	var busy *tasks.BusyError
	if !errors.As(err, &busy) || busy.Holder != "task-a" || !errors.Is(err, tasks.ErrBusy) {
		t.Fatalf("second owner: err = %v, want BusyError held by task-a", err)
	}
	// Only the holder can release.
	_ = l.Release(ctx, tasks.ScopeRestore, key, "task-b")
	if err := l.Acquire(ctx, tasks.ScopeRestore, key, "task-b", time.Minute); !errors.Is(err, tasks.ErrBusy) {
		t.Fatalf("release by a non-holder freed the lock: %v", err)
	}
	_ = l.Release(ctx, tasks.ScopeRestore, key, "task-a")
	if err := l.Acquire(ctx, tasks.ScopeRestore, key, "task-b", time.Minute); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if c, _ := l.Cancelled(ctx, key); c {
		t.Fatal("task cancelled before anyone cancelled it")
	}
	_ = l.MarkCancelled(ctx, key, time.Minute)
	if c, _ := l.Cancelled(ctx, key); !c {
		t.Fatal("MarkCancelled not seen")
	}
}

func TestSigningKeyFingerprintIsSharedThroughRedis(t *testing.T) {
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 13})
	defer rdb.Close()
	ctx := context.Background()
	rdb.Del(ctx, keySigningKeyFingerprint)
	t.Cleanup(func() { rdb.Del(context.Background(), keySigningKeyFingerprint) })
	l := NewLocks(rdb)
	if err := l.CheckSigningKey(ctx, "", nil); err != nil {
		t.Fatalf("no key anywhere: %v", err)
	}
	if err := l.CheckSigningKey(ctx, "aaaa", nil); err != nil {
		t.Fatalf("first key: %v", err)
	}
	if err := l.CheckSigningKey(ctx, "aaaa", nil); err != nil {
		t.Fatalf("same key again: %v", err)
	}
	if err := l.CheckSigningKey(ctx, "bbbb", nil); !errors.Is(err, ErrSigningKeyMismatch) {
		t.Fatalf("another key: err = %v, want ErrSigningKeyMismatch", err)
	}
	if err := l.CheckSigningKey(ctx, "", nil); !errors.Is(err, ErrSigningKeyMismatch) {
		t.Fatalf("no key while the deployment has one: err = %v, want ErrSigningKeyMismatch", err)
	}
	// Rotation: the new key names the recorded one as old.
	if err := l.CheckSigningKey(ctx, "bbbb", []string{"aaaa"}); err != nil {
		t.Fatalf("rotation: %v", err)
	}
	if err := l.CheckSigningKey(ctx, "aaaa", nil); !errors.Is(err, ErrSigningKeyMismatch) {
		t.Fatalf("the old key after rotation: err = %v, want ErrSigningKeyMismatch", err)
	}
}

type fixedLister struct{ names []string }

func (f fixedLister) List(context.Context, []string) ([]engine.Entry, error) {
	var out []engine.Entry
	for _, n := range f.names {
		out = append(out, engine.Entry{Manifest: engine.Manifest{Name: engine.MustParseName(n)}})
	}
	return out, nil
}

func TestNameIndexIsSureOnlyWhenItCanBe(t *testing.T) {
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 12})
	defer rdb.Close()
	ctx := context.Background()
	listed, fresh, gone := testbench.UniqueName("listed"), testbench.UniqueName("fresh"), testbench.UniqueName("gone")
	t.Cleanup(func() { rdb.Del(context.Background(), createdKey(fresh), deletedKey(gone), createdKey(gone)) })
	x := NewNameIndex(fixedLister{[]string{listed, gone}}, rdb, time.Hour, logrus.NewEntry(logrus.New()))
	if _, sure, err := x.Taken(ctx, listed); err != nil || sure {
		t.Fatalf("before any listing: sure = %v, %v; want unsure", sure, err)
	}
	if err := x.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(name string, wantTaken, wantSure bool) {
		t.Helper()
		taken, sure, err := x.Taken(ctx, name)
		if err != nil || taken != wantTaken || sure != wantSure {
			t.Fatalf("Taken(%s) = %v, %v, %v; want %v, %v", name, taken, sure, err, wantTaken, wantSure)
		}
	}
	check(listed, true, true)
	check(fresh, false, true)
	st := NewState(rdb)
	if err := st.MarkCreated(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	check(fresh, true, true) // completed since the listing
	if err := st.MarkDeleted(ctx, gone); err != nil {
		t.Fatal(err)
	}
	check(gone, false, false) // deleted since: ask the stores
}
