package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// ErrSigningKeyMismatch means this process's manifest signing key is not
// the one the other processes of the deployment use.
var ErrSigningKeyMismatch = errors.New("signing key differs from the one in use")

// CheckSigningKey compares this process's signing key fingerprint (""
// without a key) with the one recorded in Redis by the processes started
// before it, and records it when none is. A key whose predecessor (one of
// old) is recorded replaces it: that is a rotation. Anything else fails,
// so that a worker with another key, or none, cannot start writing
// manifests the others refuse.
func (l *Locks) CheckSigningKey(ctx context.Context, fingerprint string, old []string) error {
	recorded, err := l.rdb.Get(ctx, keySigningKeyFingerprint).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("check signing key: %w", err)
	}
	switch {
	case recorded == fingerprint:
		return nil
	case recorded == "":
		// (fingerprint is not empty here.) Another process may record a
		// different key at the same moment: SetNX lets one of them win.
		ok, err := l.rdb.SetNX(ctx, keySigningKeyFingerprint, fingerprint, 0).Result()
		if err != nil {
			return fmt.Errorf("record signing key: %w", err)
		}
		if !ok {
			if recorded, err = l.rdb.Get(ctx, keySigningKeyFingerprint).Result(); err != nil {
				return fmt.Errorf("check signing key: %w", err)
			}
			if recorded != fingerprint {
				return fmt.Errorf("%w: this process has key %s, the deployment signs with key %s", ErrSigningKeyMismatch, fingerprint, recorded)
			}
		}
		return nil
	case fingerprint == "":
		return fmt.Errorf("%w: this process has none, the deployment signs with key %s", ErrSigningKeyMismatch, recorded)
	case slices.Contains(old, recorded):
		if err := l.rdb.Set(ctx, keySigningKeyFingerprint, fingerprint, 0).Err(); err != nil {
			return fmt.Errorf("record rotated signing key: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w: this process has key %s, the deployment signs with key %s", ErrSigningKeyMismatch, fingerprint, recorded)
}
