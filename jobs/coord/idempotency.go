package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// IdempotencyTTL is how long a request's first response is kept for
// replays under its Idempotency-Key.
const IdempotencyTTL = 24 * time.Hour

// StoredResponse is the first response to a request made with an
// Idempotency-Key. Fingerprint identifies the request (method, route and
// body); Status 0 means the first request is still being served.
type StoredResponse struct {
	Fingerprint string          `json:"fingerprint"`
	Status      int             `json:"status,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
}

// Idempotency keeps the first response to each idempotency key in Redis,
// shared by every API replica.
type Idempotency struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

// NewIdempotency wraps a Redis client; ttl <= 0 means IdempotencyTTL.
func NewIdempotency(rdb redis.UniversalClient, ttl time.Duration) *Idempotency {
	if ttl <= 0 {
		ttl = IdempotencyTTL
	}
	return &Idempotency{rdb: rdb, ttl: ttl}
}

// Begin claims key for a request with this fingerprint. When the key is
// new it returns (nil, nil) and the caller serves the request, then calls
// Finish or Abort. Otherwise it returns what is stored: a finished
// response, or one with Status 0 while the first request is in flight.
func (s *Idempotency) Begin(ctx context.Context, key, fingerprint string) (*StoredResponse, error) {
	pending, _ := json.Marshal(StoredResponse{Fingerprint: fingerprint})
	ok, err := s.rdb.SetNX(ctx, idempotencyKey(key), pending, s.ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("idempotency key: %w", err)
	}
	if ok {
		return nil, nil
	}
	raw, err := s.rdb.Get(ctx, idempotencyKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		// Expired or aborted between the two calls: claim it again.
		return s.Begin(ctx, key, fingerprint)
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency key: %w", err)
	}
	var stored StoredResponse
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, fmt.Errorf("idempotency key: stored response: %w", err)
	}
	return &stored, nil
}

// Finish stores the response to replay for key.
func (s *Idempotency) Finish(ctx context.Context, key string, r StoredResponse) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("idempotency key: %w", err)
	}
	if err := s.rdb.Set(ctx, idempotencyKey(key), b, s.ttl).Err(); err != nil {
		return fmt.Errorf("idempotency key: %w", err)
	}
	return nil
}

// Abort frees key, so that a request that failed can be made again with it.
func (s *Idempotency) Abort(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, idempotencyKey(key)).Err(); err != nil {
		return fmt.Errorf("idempotency key: %w", err)
	}
	return nil
}
