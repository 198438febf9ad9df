package archiver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// SlotPrefix begins the name of every replication slot an archiver
// creates ("pgbackup_" + the archive's name): slots without it are never
// ours to drop.
const SlotPrefix = "pgbackup_"

// DropStaleSlots drops, on the server at conn, every inactive physical
// replication slot whose name begins with SlotPrefix and for which stale
// says so (a target that no longer has pitr: its slot would keep WAL on
// the server for ever, up to max_slot_wal_keep_size). An active slot is
// never dropped: an archiver streams from it. Each drop is logged; it
// returns the slots dropped, and the first error after trying them all.
func DropStaleSlots(ctx context.Context, conn pgtool.Conn, stale func(slot string) bool, log *logrus.Entry) ([]string, error) {
	c, err := pgtool.Connect(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("archiver: drop stale slots on %s: %w", conn.Addr(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical' AND NOT active AND starts_with(slot_name, $1)", SlotPrefix)
	if err != nil {
		return nil, fmt.Errorf("archiver: list slots on %s: %w", conn.Addr(), err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("archiver: list slots on %s: %w", conn.Addr(), err)
	}
	var dropped []string
	var errs []error
	for _, name := range names {
		if !strings.HasPrefix(name, SlotPrefix) || !stale(name) {
			continue
		}
		// Still inactive at the drop: an archiver may have started on it
		// since the listing (pg_drop_replication_slot refuses an active
		// slot too).
		tag, err := c.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'physical' AND NOT active", name)
		if err != nil {
			errs = append(errs, fmt.Errorf("archiver: drop slot %s on %s: %w", name, conn.Addr(), err))
			continue
		}
		if tag.RowsAffected() == 0 {
			continue
		}
		dropped = append(dropped, name)
		log.WithFields(logrus.Fields{"slot": name, "server": conn.Addr()}).
			Warn("archiver: dropped the replication slot of a target without pitr (or no longer configured); its archive gets no more WAL")
	}
	return dropped, errors.Join(errs...)
}
