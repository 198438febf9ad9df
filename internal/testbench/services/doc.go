// Package services supervises the test bench: a private PostgreSQL, Redis
// and MinIO on free loopback ports, with all their state in one directory.
//
// Start creates a bench in a directory and writes DIR/env, the
// PGBACKUP_TEST_* variables tests and tools read; Open finds an existing
// one again (from another process) to stop it, or to stop and restart one
// of its servers while a test watches the outage. Install puts the
// programs in place: Debian packages through apt-get when run as root,
// MinIO built once with go install into a cache shared by every checkout.
//
// The bench never touches servers that already run on the machine: every
// server listens on 127.0.0.1 only, PostgreSQL on its own socket directory,
// and a process is only ever signalled after it was checked to belong to
// the bench's directory (pids get reused).
//
// PostgreSQL's initdb and postgres refuse to run as root, and CI runs as
// root: then they run as the postgres user through runuser, and when that
// user cannot reach the directory (a checkout under /root) or the socket
// path would be too long, PostgreSQL's files move to a directory of their
// own under /tmp, linked from DIR/pg.
package services
