// Package engine takes, lists, restores and deletes PostgreSQL backups.
//
// A backup streams pg_dump's output through a SHA-256 hasher into one or
// more stores at once; only after every store holds the complete archive is
// a manifest written beside it. The manifest is what makes a backup exist:
// List shows only backups whose manifest and archive are both present, and
// Restore verifies the archive against the manifest's checksum before it
// touches the target database.
//
// Requests arrive parsed: a Name (name.go), a Format (format.go) and
// database names (pgtool.Ident, parsed by database.go's ParseDatabase and
// ParseBackupDatabase) can only be made by parsing, where they enter (an
// HTTP request, a task payload, a command-line flag, a setting, a manifest
// read from a store). The engine refuses only their zero values and never
// checks them again.
//
// The files follow a backup in the order it runs:
//
//   - backup.go: Backup, the entry point, as a list of stages.
//   - validate.go: the request checked and resolved; the name claimed.
//   - dump.go, dump_server.go, dump_globals.go: pg_dump of one database,
//     of every database of a server, and pg_dumpall --globals-only; each
//     archive goes through encode and put as it is written.
//   - encode.go (with codec.go, encrypt.go, stream.go): compression,
//     encryption and the checksum, in the stream.
//   - put.go: one stream into several stores at once.
//   - publish.go (with manifest.go, signing.go): the manifest, signed and
//     written last.
//
// Apart from the backup path: find.go and list.go read the stores (with
// catalog.go's cache), restore*.go restore, verify.go, delete.go and
// drill.go do what they say, bucket_*.go back up and restore S3 buckets
// through the same stages, and keys.go builds every store key.
package engine
