package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// State keeps what the service has observed about its targets in Redis,
// beside the queue: the last backup and drill of each target, the backup
// counters, the drill history and each target's RPO state. Every API
// instance and every scheduler reads the same values, and they survive
// restarts of any of them.
type State struct {
	rdb redis.UniversalClient
}

// NewState wraps a Redis client.
func NewState(rdb redis.UniversalClient) *State { return &State{rdb: rdb} }

// DrillRetention is how long drill results are kept.
const DrillRetention = 90 * 24 * time.Hour

// Outcomes counted in backups_total.
const (
	OutcomeSuccess = "success"
	OutcomeFailed  = "failed"
)

// TargetStatus is what State knows of one target.
type TargetStatus struct {
	LastSuccess         time.Time          `json:"last_success,omitempty"`
	LastBackup          string             `json:"last_backup,omitempty"`
	LastDuration        time.Duration      `json:"-"`
	LastSizeBytes       int64              `json:"last_size_bytes,omitempty"`
	FirstSeen           time.Time          `json:"-"`
	LastDrill           *tasks.DrillResult `json:"last_drill,omitempty"`
	LastDrillSuccess    time.Time          `json:"last_drill_success,omitempty"`
	LastDrillSuccessRTO time.Duration      `json:"-"`
	// WAL is what the archiver last published of the target's continuous
	// WAL archive; nil when the target has none (no pitr, or no archiver
	// has streamed it yet).
	WAL *WALStatus `json:"wal,omitempty"`
}

// RecoveryPoint is the newest moment a restore can recover to now: the
// newest good backup's end, or the WAL archive's archived_through when
// that is later (a pitr target). Both are recovery points, so the later
// one bounds the loss; a stale WAL state (pitr turned off) cannot hide a
// newer dump.
func (st TargetStatus) RecoveryPoint() time.Time {
	if st.WAL != nil && st.WAL.ArchivedThrough.After(st.LastSuccess) {
		return st.WAL.ArchivedThrough
	}
	return st.LastSuccess
}

// Age is how far the target is from its RPO at now (see policy.Age): the
// age of its RecoveryPoint.
func (st TargetStatus) Age(now time.Time) time.Duration {
	return policy.Age(st.RecoveryPoint(), st.FirstSeen, now)
}

// RecordBackup counts a finished backup task of target and, for a success,
// remembers it as the target's newest good backup.
func (s *State) RecordBackup(ctx context.Context, target, outcome, name string, finished time.Time, dur time.Duration, size int64) error {
	pipe := s.rdb.TxPipeline()
	pipe.HIncrBy(ctx, keyBackupCounters, target+"|"+outcome, 1)
	if outcome == OutcomeSuccess && target != "" {
		pipe.HSet(ctx, targetKey(target), map[string]any{
			"last_success": finished.UnixMilli(), "last_backup": name,
			"last_duration_ms": dur.Milliseconds(), "last_size_bytes": size,
		})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record backup: %w", err)
	}
	return nil
}

// NoteNewest remembers a target's newest good backup found in the stores
// (when Redis had lost it), without counting a backup.
func (s *State) NoteNewest(ctx context.Context, target, name string, at time.Time) error {
	if err := s.rdb.HSet(ctx, targetKey(target), "last_success", at.UnixMilli(), "last_backup", name).Err(); err != nil {
		return fmt.Errorf("note newest backup of %s: %w", target, err)
	}
	return nil
}

// Counters returns backups_total by target and outcome.
func (s *State) Counters(ctx context.Context) (map[[2]string]int64, error) {
	raw, err := s.rdb.HGetAll(ctx, keyBackupCounters).Result()
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	out := make(map[[2]string]int64, len(raw))
	for k, v := range raw {
		target, outcome, _ := strings.Cut(k, "|")
		n, _ := strconv.ParseInt(v, 10, 64)
		out[[2]string{target, outcome}] = n
	}
	return out, nil
}

// Status returns what is known of target. FirstSeen is set on the first
// call, so that a target with no backup yet ages from when it was first
// watched, not from the epoch.
func (s *State) Status(ctx context.Context, target string) (TargetStatus, error) {
	key := targetKey(target)
	if err := s.rdb.HSetNX(ctx, key, "first_seen", time.Now().UnixMilli()).Err(); err != nil {
		return TargetStatus{}, fmt.Errorf("read target %s: %w", target, err)
	}
	raw, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return TargetStatus{}, fmt.Errorf("read target %s: %w", target, err)
	}
	ms := func(k string) time.Time {
		n, err := strconv.ParseInt(raw[k], 10, 64)
		if err != nil || n == 0 {
			return time.Time{}
		}
		return time.UnixMilli(n).UTC()
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(raw[k], 10, 64); return n }
	st := TargetStatus{
		LastSuccess: ms("last_success"), LastBackup: raw["last_backup"],
		LastDuration: time.Duration(num("last_duration_ms")) * time.Millisecond, LastSizeBytes: num("last_size_bytes"),
		FirstSeen: ms("first_seen"), LastDrillSuccess: ms("last_drill_success"),
		LastDrillSuccessRTO: time.Duration(num("last_drill_rto_ms")) * time.Millisecond,
		WAL:                 walStatus(raw),
	}
	if d := raw["last_drill"]; d != "" {
		var r tasks.DrillResult
		if json.Unmarshal([]byte(d), &r) == nil {
			st.LastDrill = &r
		}
	}
	return st, nil
}

// RecordDrill keeps a drill result for DrillRetention and updates the
// target's last drill.
func (s *State) RecordDrill(ctx context.Context, r tasks.DrillResult) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("record drill: %w", err)
	}
	pipe := s.rdb.TxPipeline()
	pipe.ZAdd(ctx, keyDrills, redis.Z{Score: float64(r.At.UnixMilli()), Member: b})
	pipe.ZRemRangeByScore(ctx, keyDrills, "-inf", strconv.FormatInt(time.Now().Add(-DrillRetention).UnixMilli(), 10))
	fields := map[string]any{"last_drill": b}
	if r.Passed {
		fields["last_drill_success"] = r.At.UnixMilli()
		fields["last_drill_rto_ms"] = int64(r.RTOSeconds * 1000)
	}
	pipe.HSet(ctx, targetKey(r.Target), fields)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record drill: %w", err)
	}
	return nil
}

// Drills returns drill results, newest first, for one target or all ("").
func (s *State) Drills(ctx context.Context, target string, limit int) ([]tasks.DrillResult, error) {
	raw, err := s.rdb.ZRevRangeByScore(ctx, keyDrills, &redis.ZRangeBy{Min: "-inf", Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("read drills: %w", err)
	}
	var out []tasks.DrillResult
	for _, r := range raw {
		var d tasks.DrillResult
		if json.Unmarshal([]byte(r), &d) != nil || (target != "" && d.Target != target) {
			continue
		}
		out = append(out, d)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// SetRPOState records whether target's RPO is breached and reports whether
// that changed. SET ... GET makes the change atomic, so of several
// schedulers checking at once exactly one sees it and sends the alert.
func (s *State) SetRPOState(ctx context.Context, target string, breached bool) (changed bool, err error) {
	now := "ok"
	if breached {
		now = "breached"
	}
	prev, err := s.rdb.SetArgs(ctx, rpoKey(target), now, redis.SetArgs{Get: true}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("rpo state %s: %w", target, err)
	}
	if prev == "" {
		// Never checked before: only a breach is news.
		return breached, nil
	}
	return prev != now, nil
}
