package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// replace restores beside the target and swaps the result in: restore
// into a scratch database, check its row counts against the manifest,
// then in one short step stop connections to the target, rename it to
// <target>_replaced_<UTC time>, and rename the scratch database to the
// target. Until that step the target is untouched; any failure drops the
// scratch database and leaves the target as it was.
func (e *Engine) replace(ctx context.Context, tools pgtool.Tools, m *Manifest, archive, target string, res *RestoreResult, log *logrus.Entry) error {
	scratch := ScratchPrefix(target) + randomHex(4)
	if err := pgtool.CreateDatabase(ctx, e.conn, scratch); err != nil {
		return err
	}
	swapped := false
	defer func() {
		if !swapped {
			e.dropQuietly(ctx, scratch, log)
		}
	}()
	if err := e.runRestore(ctx, tools, e.conn.WithDatabase(scratch), m.Format, archive, false); err != nil {
		return err
	}
	if err := e.checkRestoredCounts(ctx, m, scratch); err != nil {
		return err
	}
	res.RowCountsChecked = m.RowCounts != nil

	old, downtime, err := e.swap(ctx, target, scratch, log)
	if err != nil {
		return err
	}
	swapped = true
	res.ReplacedCopy, res.SwapDowntimeMS = old, downtime.Milliseconds()
	log.WithFields(logrus.Fields{"replaced_copy": old, "swap_downtime_ms": res.SwapDowntimeMS}).Info("replaced the target with the restored copy")
	return nil
}

// checkRestoredCounts compares a restored database's row counts with the
// manifest's (when the backup recorded them).
func (e *Engine) checkRestoredCounts(ctx context.Context, m *Manifest, db string) error {
	if m.RowCounts == nil {
		return nil
	}
	got, err := countDatabase(ctx, e.conn.WithDatabase(db))
	if err != nil {
		return err
	}
	if diff := compareCounts(m.RowCounts, got); diff != "" {
		return fmt.Errorf("%w: %s", ErrRowCountMismatch, diff)
	}
	return nil
}

// swap renames target away (when it exists) and scratch into its place,
// returning the old copy's name and how long the target was unavailable.
func (e *Engine) swap(ctx context.Context, target, scratch string, log *logrus.Entry) (string, time.Duration, error) {
	conn, err := pgtool.Connect(ctx, e.conn.WithDatabase("postgres"))
	if err != nil {
		return "", 0, err
	}
	// The swap must not be half done because the task was cancelled.
	ctx = context.WithoutCancel(ctx)
	defer conn.Close(ctx)
	exec := func(sql string, args ...any) error {
		_, err := conn.Exec(ctx, sql, args...)
		return err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", target).Scan(&exists); err != nil {
		return "", 0, fmt.Errorf("swap: %w", err)
	}
	start := time.Now()
	if !exists {
		if err := exec("ALTER DATABASE " + pgtool.QuoteIdent(scratch) + " RENAME TO " + pgtool.QuoteIdent(target)); err != nil {
			return "", 0, fmt.Errorf("swap: rename %s to %s: %w", scratch, target, err)
		}
		return "", time.Since(start), nil
	}
	old := replacedName(target, start)
	// No new sessions from here on; the existing ones are ended, waiting up
	// to 5 s for each to go, and the rename retried a few times in case one
	// was still on its way out.
	if err := exec("ALTER DATABASE " + pgtool.QuoteIdent(target) + " WITH ALLOW_CONNECTIONS false"); err != nil {
		return "", 0, fmt.Errorf("swap: stop connections to %s: %w", target, err)
	}
	allow := func(db string) {
		if err := exec("ALTER DATABASE " + pgtool.QuoteIdent(db) + " WITH ALLOW_CONNECTIONS true"); err != nil {
			log.WithError(err).WithField("database", db).Warn("could not allow connections again")
		}
	}
	var renameErr error
	for attempt := range 5 {
		if attempt > 0 {
			// A session that just disconnected stays in pg_stat_activity
			// until its backend exits, and a superuser's cannot be ended by
			// a role that is not one ("must be a superuser to terminate
			// superuser process"): give it a moment before the next try.
			// (ctx cannot be cancelled here, see above.)
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		if err := exec("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", target); err != nil {
			renameErr = fmt.Errorf("end sessions: %w", err)
			continue
		}
		if renameErr = exec("ALTER DATABASE " + pgtool.QuoteIdent(target) + " RENAME TO " + pgtool.QuoteIdent(old)); renameErr == nil {
			break
		}
	}
	if renameErr != nil {
		allow(target)
		return "", 0, fmt.Errorf("swap: rename %s to %s: %w", target, old, renameErr)
	}
	if err := exec("ALTER DATABASE " + pgtool.QuoteIdent(scratch) + " RENAME TO " + pgtool.QuoteIdent(target)); err != nil {
		// Put the original back where it was.
		if berr := exec("ALTER DATABASE " + pgtool.QuoteIdent(old) + " RENAME TO " + pgtool.QuoteIdent(target)); berr != nil {
			err = errors.Join(err, fmt.Errorf("renaming %s back to %s: %w", old, target, berr))
		}
		allow(target)
		return "", 0, fmt.Errorf("swap: rename %s to %s: %w", scratch, target, err)
	}
	downtime := time.Since(start)
	allow(old)
	return old, downtime, nil
}

// ScratchPrefix starts the name of every scratch database a replace of
// target creates, so that one left behind by a crash can be told apart
// (and found by tests) without knowing its random part.
func ScratchPrefix(target string) string {
	sum := sha256.Sum256([]byte(target))
	return "pgbackup_scratch_" + hex.EncodeToString(sum[:4]) + "_"
}

// replacedName is <target>_replaced_<UTC time>, the target shortened as
// needed to stay within PostgreSQL's 63-byte identifiers.
func replacedName(target string, at time.Time) string {
	suffix := "_replaced_" + at.UTC().Format("20060102T150405Z")
	if len(target)+len(suffix) > 63 {
		target = target[:63-len(suffix)]
	}
	return target + suffix
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
