package coord

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/loop"
	"github.com/autograph/pgbackup/jobs/policy"
)

// markTTL (of createdKey and deletedKey, built with their hash tag in
// keys.go) outlives any name index's refresh interval by far.
const markTTL = 10 * time.Minute

// MarkCreated records that a backup was just completed, for the name
// indexes of the API instances until their next listing sees it.
func (s *State) MarkCreated(ctx context.Context, name string) error {
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, createdKey(name), "1", markTTL)
	pipe.Del(ctx, deletedKey(name))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("mark %s created: %w", name, err)
	}
	return nil
}

// MarkDeleted records that a backup was just deleted (from some store).
func (s *State) MarkDeleted(ctx context.Context, name string) error {
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, deletedKey(name), "1", markTTL)
	pipe.Del(ctx, createdKey(name))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("mark %s deleted: %w", name, err)
	}
	return nil
}

// NameIndex answers "is this backup name taken?" without reading the
// stores on every request: from the names of the last listing of the
// stores (refreshed every interval; the stores stay the truth), plus the
// marks workers leave in Redis for backups completed or deleted since.
// When it cannot be sure (no listing yet, or a deletion since), it says
// so and the caller asks the stores.
type NameIndex struct {
	lister   policy.Lister
	rdb      redis.UniversalClient
	interval time.Duration
	log      *logrus.Entry

	mu    sync.RWMutex
	names map[string]bool
	ready bool
}

// NewNameIndex returns an index that Run keeps fresh.
func NewNameIndex(l policy.Lister, rdb redis.UniversalClient, interval time.Duration, log *logrus.Entry) *NameIndex {
	return &NameIndex{lister: l, rdb: rdb, interval: interval, log: log}
}

// Run refreshes the index every interval until ctx ends.
func (x *NameIndex) Run(ctx context.Context) {
	loop.Every(ctx, x.interval, x.log, "name index: listing failed; create asks the stores until it works again", x.refresh)
}

func (x *NameIndex) refresh(ctx context.Context) error {
	entries, err := x.lister.List(ctx, nil)
	if err != nil {
		x.mu.Lock()
		x.ready = false
		x.mu.Unlock()
		return err
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name.String()] = true
	}
	x.mu.Lock()
	x.names, x.ready = names, true
	x.mu.Unlock()
	return nil
}

// Taken reports whether name belongs to a backup. sure is false when the
// index cannot tell; the caller must then look in the stores.
func (x *NameIndex) Taken(ctx context.Context, name string) (taken, sure bool, err error) {
	marks, err := x.rdb.MGet(ctx, createdKey(name), deletedKey(name)).Result()
	if err != nil {
		return false, false, fmt.Errorf("name index: %w", err)
	}
	if marks[0] != nil {
		return true, true, nil
	}
	if marks[1] != nil {
		return false, false, nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.ready {
		return false, false, nil
	}
	return x.names[name], true, nil
}
