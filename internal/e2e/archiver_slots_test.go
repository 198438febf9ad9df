package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/harness"
)

// TestArchiverDropsSlotWithoutPITR: removing pitr from a target drops its
// replication slot when an archiver next starts. An archiver streams the
// pitr target (its slot pgbackup_wal_e2e active); the configuration then
// loses pitr on wal_e2e and gains keep_me, a pitr target on the same
// server. An archiver with the new configuration started while the first
// still streams leaves the active slot alone; once that one has stopped,
// the next start drops pgbackup_wal_e2e, logging it, and keeps
// pgbackup_keep_me (the new archive's), pgbackup_gone (no such target:
// maybe another deployment's) and other_slot (not ours).
func TestArchiverDropsSlotWithoutPITR(t *testing.T) {
	t.Parallel()
	p := newPITRCluster(t)
	ctx := t.Context()
	old := p.start("archiver", harness.Archiver)
	if err := old.WaitLog(ctx, "streaming WAL", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"pgbackup_gone", "pgbackup_keep_me", "other_slot"} {
		if _, err := p.su.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true)", s); err != nil {
			t.Fatal(err)
		}
	}
	noPITR := fmt.Sprintf(`BACKUP_TARGETS=[{"name":%q,%s},{"name":"keep_me",%s,"pitr":true}]`, walTarget, p.server, p.server)

	beside := p.start("archiver-new", harness.Archiver, noPITR)
	if err := beside.WaitLog(ctx, "streaming WAL", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := p.slots(t); !slices.Contains(got, "pgbackup_"+walTarget) {
		t.Fatalf("slots %v: the active slot pgbackup_%s was dropped", got, walTarget)
	}
	stopCleanly(t, beside)
	stopCleanly(t, old)

	next, err := beside.Restart()
	if err != nil {
		t.Fatal(err)
	}
	if err := next.WaitLog(ctx, "streaming WAL", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{"other_slot", "pgbackup_gone", "pgbackup_keep_me"}
	if got := p.slots(t); !slices.Equal(got, want) {
		t.Errorf("slots after the archiver started without pitr on %s: %v, want %v", walTarget, got, want)
	}
	logged := logText(t, next)
	for _, s := range []string{"pgbackup_" + walTarget} {
		if !strings.Contains(logged, `"slot":"`+s+`"`) || !strings.Contains(logged, "dropped the replication slot") {
			t.Errorf("the archiver did not log dropping %s", s)
		}
	}
	// The new archive's slot must survive, not be dropped and made again.
	for _, line := range strings.Split(logged, "\n") {
		if strings.Contains(line, "dropped the replication slot") &&
			(strings.Contains(line, `"slot":"pgbackup_keep_me"`) || strings.Contains(line, `"slot":"other_slot"`) ||
				strings.Contains(line, `"slot":"pgbackup_gone"`)) {
			t.Errorf("the archiver dropped a slot it must keep: %s", line)
		}
	}
	stopCleanly(t, next)
}

// slots lists the server's replication slots by name.
func (p *pitrCluster) slots(t *testing.T) []string {
	t.Helper()
	rows, err := p.su.Query(t.Context(), "SELECT slot_name FROM pg_replication_slots ORDER BY slot_name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
