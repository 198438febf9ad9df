package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// AuditEntry is one admin action as the audit trail keeps it. Token is the
// token's fingerprint, never the token.
type AuditEntry struct {
	At      time.Time `json:"at"`
	Token   string    `json:"token_fingerprint"`
	Action  string    `json:"action"`
	Backup  string    `json:"backup,omitempty"`
	Target  string    `json:"target,omitempty"`
	Task    string    `json:"task_id,omitempty"`
	Client  string    `json:"client"`
	Status  int       `json:"status"`
	Outcome string    `json:"outcome"`
	// RequestID is the request's X-Request-ID (the caller's, or the one the
	// API made), so an entry can be matched with the API's and workers' logs.
	RequestID string `json:"request_id,omitempty"`
}

// AuditTrail keeps the most recent admin actions in a bounded Redis list,
// shared by every API instance; the full history is in the audit log lines.
type AuditTrail struct {
	rdb  redis.UniversalClient
	keep int64
}

// NewAuditTrail keeps the last keep entries (1000 when keep < 1).
func NewAuditTrail(rdb redis.UniversalClient, keep int) *AuditTrail {
	if keep < 1 {
		keep = 1000
	}
	return &AuditTrail{rdb: rdb, keep: int64(keep)}
}

// Record adds an entry, dropping the oldest beyond the bound.
func (a *AuditTrail) Record(ctx context.Context, e AuditEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	pipe := a.rdb.TxPipeline()
	pipe.LPush(ctx, keyAudit, b)
	pipe.LTrim(ctx, keyAudit, 0, a.keep-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	return nil
}

// Recent returns up to n entries, newest first.
func (a *AuditTrail) Recent(ctx context.Context, n int) ([]AuditEntry, error) {
	raw, err := a.rdb.LRange(ctx, keyAudit, 0, int64(n)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("audit read: %w", err)
	}
	out := make([]AuditEntry, 0, len(raw))
	for _, r := range raw {
		var e AuditEntry
		if json.Unmarshal([]byte(r), &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}
