package remote

import (
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
)

// TestWriteAdoptResult: a person reads what would be adopted, what is
// skipped and why, and the command that applies the dry run.
func TestWriteAdoptResult(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	err := WriteAdoptResult(&b, client.AdoptResult{DryRun: true, Plan: strings.Repeat("ab", 32),
		Adopted: []client.AdoptItem{{BackupName: "backup_20240101_020000", Store: "local", Key: "backup_20240101_020000.dump",
			Format: "custom", Database: "app", SizeBytes: 2048, CreatedAt: time.Date(2024, 1, 1, 2, 0, 0, 0, time.UTC)}},
		Skipped:          []client.AdoptItem{{BackupName: "junk", Store: "local", Key: "junk.dump", Reason: "not a dump", Detail: "pg_restore --list failed"}},
		PruneWouldDelete: map[string][]string{"app": {"backup_20240101_020000"}}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"would adopt 1:", "local:backup_20240101_020000.dump", "2024-01-01 02:00:00Z",
		"skipped 1:", "junk", "not a dump", "the next prune of app would delete", "pgbackup adopt --plan " + strings.Repeat("ab", 32)} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
