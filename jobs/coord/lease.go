package coord

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLeaseLost means an archiver no longer holds its target's lease: a
// renewal failed, the lease expired, or another archiver took it (the
// fencing token moved on). The holder must stop writing at once.
var ErrLeaseLost = errors.New("archiver lease lost")

// Lease defaults: a standby takes over within TTL + RenewEvery (13 s) of
// the holder's death, inside the 15 s issue #21 asks for.
const (
	DefaultLeaseTTL        = 10 * time.Second
	DefaultLeaseRenewEvery = 3 * time.Second
)

// ArchiverLease makes one archiver per target at a time: whoever holds the
// lease streams; the others wait as hot standbys. Each taking of the lease
// draws a fencing token, strictly greater than every earlier one, so that
// a write path can refuse a holder whose token moved on.
type ArchiverLease struct {
	rdb        redis.UniversalClient
	target     string
	owner      string
	ttl, renew time.Duration
}

// NewArchiverLease is the lease of target for owner (a process ID). ttl
// and renewEvery of 0 take the defaults; renewEvery must be well below ttl.
func NewArchiverLease(rdb redis.UniversalClient, target, owner string, ttl, renewEvery time.Duration) *ArchiverLease {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	if renewEvery <= 0 {
		renewEvery = DefaultLeaseRenewEvery
	}
	return &ArchiverLease{rdb: rdb, target: target, owner: owner, ttl: ttl, renew: renewEvery}
}

// acquireScript takes a free lease with the next token; 0 when held.
var acquireScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
local token = redis.call("INCR", KEYS[2])
redis.call("SET", KEYS[1], token .. " " .. ARGV[1], "PX", ARGV[2])
return token`)

// renewScript extends the lease if it is still ours (same token).
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0`)

// Acquire waits until the lease is free and takes it (checking every
// renewal period: a standby's wait), then keeps renewing it until Release
// or until it is lost.
func (l *ArchiverLease) Acquire(ctx context.Context) (*HeldLease, error) {
	keys := []string{archiverLeaseKey(l.target), archiverFenceKey(l.target)}
	for {
		token, err := acquireScript.Run(ctx, l.rdb, keys, l.owner, l.ttl.Milliseconds()).Int64()
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("archiver lease %s: %w", l.target, err)
		}
		if err != nil {
			return nil, err
		}
		if token > 0 {
			h := &HeldLease{l: l, Token: token, value: strconv.FormatInt(token, 10) + " " + l.owner,
				renewed: time.Now(), lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
			go h.keep()
			return h, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(l.renew):
		}
	}
}

// HeldLease is a lease an archiver holds.
type HeldLease struct {
	l *ArchiverLease
	// Token is this holding's fencing token.
	Token int64
	value string

	mu       sync.Mutex
	renewed  time.Time
	lostOnce sync.Once
	lost     chan struct{}
	stop     chan struct{}
	done     chan struct{}
}

// Lost is closed once the lease is lost.
func (h *HeldLease) Lost() <-chan struct{} { return h.lost }

func (h *HeldLease) markLost() { h.lostOnce.Do(func() { close(h.lost) }) }

// keep renews the lease; the first failed renewal (a Redis error or a
// lease no longer ours) loses it: a holder that cannot prove it still
// holds the lease must assume a standby took over.
func (h *HeldLease) keep() {
	defer close(h.done)
	t := time.NewTicker(h.l.renew)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.lost:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.l.renew)
		n, err := renewScript.Run(ctx, h.l.rdb, []string{archiverLeaseKey(h.l.target)}, h.value, h.l.ttl.Milliseconds()).Int64()
		cancel()
		if err != nil || n == 0 {
			h.markLost()
			return
		}
		h.mu.Lock()
		h.renewed = time.Now()
		h.mu.Unlock()
	}
}

// Check returns ErrLeaseLost unless the lease is still this holding's:
// not marked lost, renewed within its TTL, and (asked of Redis now) still
// carrying this token. Every write to the target's WAL archive goes
// through it.
func (h *HeldLease) Check(ctx context.Context) error {
	select {
	case <-h.lost:
		return fmt.Errorf("archiver lease %s token %d: %w", h.l.target, h.Token, ErrLeaseLost)
	default:
	}
	h.mu.Lock()
	expired := time.Since(h.renewed) >= h.l.ttl
	h.mu.Unlock()
	if expired {
		h.markLost()
		return fmt.Errorf("archiver lease %s token %d: %w (not renewed within its TTL)", h.l.target, h.Token, ErrLeaseLost)
	}
	v, err := h.l.rdb.Get(ctx, archiverLeaseKey(h.l.target)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("archiver lease %s: check: %w", h.l.target, err)
	}
	if v != h.value {
		h.markLost()
		return fmt.Errorf("archiver lease %s token %d: %w (now %q)", h.l.target, h.Token, ErrLeaseLost, v)
	}
	return nil
}

// Release stops renewing and frees the lease if it is still ours, so a
// standby takes over at once rather than after the TTL.
func (h *HeldLease) Release(ctx context.Context) error {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
	if err := releaseScript.Run(ctx, h.l.rdb, []string{archiverLeaseKey(h.l.target)}, h.value).Err(); err != nil {
		return fmt.Errorf("archiver lease %s: release: %w", h.l.target, err)
	}
	return nil
}
