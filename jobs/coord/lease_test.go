package coord

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/internal/testbench"
)

// die stops h's renewals without releasing: what a SIGKILLed holder leaves.
func (h *HeldLease) die() {
	close(h.stop)
	<-h.done
}

func leaseClient(t *testing.T) redis.UniversalClient {
	t.Helper()
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 11})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestArchiverLeaseStandbyTakesOverAfterDeath: one holder at a time; the
// standby waits, takes over after the holder dies (within TTL plus one
// renewal period, well inside 15 s), with a greater token; the dead
// holder's Check then fails.
func TestArchiverLeaseStandbyTakesOverAfterDeath(t *testing.T) {
	t.Parallel()
	rdb := leaseClient(t)
	target := testbench.UniqueName("lease")
	ctx := t.Context()
	const ttl, renew = time.Second, 200 * time.Millisecond
	a, err := NewArchiverLease(rdb, target, "a", ttl, renew).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		h   *HeldLease
		err error
		at  time.Time
	}
	standby := make(chan got, 1)
	go func() {
		h, err := NewArchiverLease(rdb, target, "b", ttl, renew).Acquire(ctx)
		standby <- got{h, err, time.Now()}
	}()
	// Several renewals go by: the holder keeps it, the standby waits.
	deadline := time.Now().Add(3 * ttl)
	for time.Now().Before(deadline) {
		select {
		case g := <-standby:
			t.Fatalf("standby took the lease (token %v, err %v) while the holder lives", g.h, g.err)
		case <-time.After(renew):
		}
		if err := a.Check(ctx); err != nil {
			t.Fatalf("live holder: Check = %v", err)
		}
	}
	died := time.Now()
	a.die()
	var b got
	select {
	case b = <-standby:
	case <-time.After(15 * time.Second):
		t.Fatal("standby did not take over within 15 s of the holder's death")
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	t.Logf("standby took over %.1f s after the holder's death", b.at.Sub(died).Seconds())
	if b.h.Token <= a.Token {
		t.Errorf("standby's token %d, want greater than the dead holder's %d", b.h.Token, a.Token)
	}
	if err := a.Check(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("dead holder: Check = %v, want ErrLeaseLost", err)
	}
	if err := b.h.Check(ctx); err != nil {
		t.Errorf("new holder: Check = %v", err)
	}
	// Release frees it at once for the next standby.
	if err := b.h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := NewArchiverLease(rdb, target, "c", ttl, renew).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(context.Background())
	if c.Token <= b.h.Token {
		t.Errorf("token %d after %d: tokens must only grow", c.Token, b.h.Token)
	}
}

// TestArchiverLeaseLostWhenRenewalFails: a lease that vanished from Redis
// (or moved to another token) is lost at the next renewal: Lost closes and
// Check refuses, without any write having to try first.
func TestArchiverLeaseLostWhenRenewalFails(t *testing.T) {
	t.Parallel()
	rdb := leaseClient(t)
	target := testbench.UniqueName("lease")
	ctx := t.Context()
	h, err := NewArchiverLease(rdb, target, "a", 5*time.Second, 100*time.Millisecond).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(context.Background())
	if err := h.Check(ctx); err != nil {
		t.Fatalf("fresh lease: Check = %v", err)
	}
	if err := rdb.Del(ctx, archiverLeaseKey(target)).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("lease not marked lost after its key vanished")
	}
	if err := h.Check(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Check = %v, want ErrLeaseLost", err)
	}
}
