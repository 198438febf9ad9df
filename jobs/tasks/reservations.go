package tasks

import (
	"errors"
	"fmt"
)

// Reservation scopes: what a reservation keeps to one task at a time. The
// API takes a task's reservations when it enqueues it and the worker
// holds them while it runs (see jobs/coord's Locks).
const (
	// ScopeName reserves a backup name from enqueue until the backup exists
	// or its task has failed for good, so two creates of one name cannot
	// both be accepted.
	ScopeName = "name"
	// ScopeRestore reserves a database for one restore at a time: two
	// restores into one database must never interleave.
	ScopeRestore = "restore"
)

// Reservation is one thing a task keeps to itself while it runs.
type Reservation struct{ Scope, Key string }

// Reserver is a payload whose task holds reservations.
type Reserver interface {
	Reservations() []Reservation
}

// RestoreKey is the reservation that keeps two restores out of one
// database: the database's name, qualified by the configured target whose
// own server it is on (the same name on two servers is two databases).
func RestoreKey(target, db string) string {
	if target != "" {
		return target + "/" + db
	}
	return db
}

// ErrBusy means another task holds the reservation; errors.As with
// *BusyError tells which.
var ErrBusy = errors.New("reserved by another task")

// BusyError names the task holding a reservation.
type BusyError struct{ Scope, Key, Holder string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s: %s %s is held by task %s", ErrBusy, e.Scope, e.Key, e.Holder)
}

// Unwrap makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Unwrap() error { return ErrBusy }
