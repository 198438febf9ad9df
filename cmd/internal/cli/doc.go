// Package cli is pgbackup's one face: the commands, their flags, their
// help and the choice of where a command runs. A command runs in one of
// two modes: locally (pg_dump and pg_restore here, once, against the
// stores of the configuration; cmd/pgbackup) or remotely (a client of the
// service's API; cmd/internal/remote). Both modes parse the same flag set
// per command, so --help lists the same flags whichever mode would run,
// and a flag meant for the other mode is refused by name rather than
// being unknown.
package cli
