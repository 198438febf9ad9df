// Package archiver streams a PostgreSQL server's WAL into a wal.Archive over
// the physical replication protocol: the streamer of the archiver role
// (issue #21).
//
// Why github.com/jackc/pglogrepl and not pg_receivewal as a child process
// (the way pg_dump runs): pg_receivewal confirms a flush position to the
// server once the bytes are on its local disk, writes the open segment as
// one *.partial file it rewrites, and resumes from the newest segment in
// its own directory or from the slot. The archiver must instead
//   - confirm a flush position only once the bytes are durable in the
//     store (so the slot never lets the server drop WAL the archive lacks,
//     and `sync: true` gives RPO 0 through synchronous_standby_names);
//   - upload the open segment as append-only chunks every partial interval
//     (no object is ever rewritten);
//   - resume from the end of the ARCHIVE, whichever host it runs on (a new
//     host's empty directory must not mean "start at the server's current
//     position": that is a silent gap).
//
// Speaking the protocol ourselves does all three with one connection and
// no local disk.
//
// It needs PostgreSQL 15 or later (READ_REPLICATION_SLOT finds where an
// existing slot's WAL starts), a role with REPLICATION, a `replication`
// line in pg_hba.conf, max_wal_senders > 0 and a finite
// max_slot_wal_keep_size.
package archiver
