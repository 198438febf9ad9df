package remote

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/autograph/pgbackup/handlers/client"
)

// WriteAdoptResult prints an adoption's lists for a person: what was (or
// would be) adopted, what was skipped and why, and after a dry run the
// command that applies it. Both modes print it this way.
func WriteAdoptResult(w io.Writer, res client.AdoptResult) error {
	verb := "adopted"
	if res.DryRun {
		verb = "would adopt"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s %d:\n", verb, len(res.Adopted))
	for _, a := range res.Adopted {
		fmt.Fprintf(tw, "  %s\t%s:%s\t%s\t%s\t%s\t%s\n", a.BackupName, a.Store, a.Key, a.Format, a.Database,
			human(a.SizeBytes), a.CreatedAt.Format("2006-01-02 15:04:05Z"))
	}
	fmt.Fprintf(tw, "skipped %d:\n", len(res.Skipped))
	for _, s := range res.Skipped {
		fmt.Fprintf(tw, "  %s\t%s:%s\t%s\t%s\n", s.BackupName, s.Store, s.Key, s.Reason, s.Detail)
	}
	for target, names := range res.PruneWouldDelete {
		fmt.Fprintf(tw, "the next prune of %s would delete (ADOPTED_RETENTION): %s\n", target, strings.Join(names, ", "))
	}
	if res.DryRun && len(res.Adopted) > 0 {
		fmt.Fprintf(tw, "to adopt exactly these: pgbackup adopt --plan %s\n", res.Plan)
	}
	return tw.Flush()
}
