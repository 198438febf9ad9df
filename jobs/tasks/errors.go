package tasks

import (
	"context"
	"errors"
	"strings"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// Errors the task runtime itself produces.
var (
	// ErrBadPayload is a task whose payload cannot be decoded or used.
	ErrBadPayload = errors.New("bad task payload")
	// ErrCancelled is a task someone cancelled.
	ErrCancelled = errors.New("task cancelled")
	// ErrUnknownWebhook is an alert for a webhook that is not (or no
	// longer) configured; alerts go only to configured URLs.
	ErrUnknownWebhook = errors.New("webhook not configured")
)

// errorClass is one line of the error table.
type errorClass struct {
	err error
	// class names what went wrong in words safe to show anyone who may
	// read task status: no host, user, path or tool output.
	class string
	// permanent: retrying cannot help (bad input, missing or existing
	// backup, corrupt archive, no suitable pg_dump, an SQL error or a
	// refused login). Tool failures it does not recognise, a lost
	// connection, a server shutting down or out of resources, and store
	// outages are retried.
	permanent bool
}

// errorClasses is the one table of task errors. For Classify the first
// match wins, so more specific errors come first.
var errorClasses = []errorClass{
	{ErrCancelled, "cancelled", true},
	{ErrBadPayload, "invalid task", true},
	{ErrUnknownWebhook, "webhook not configured", true},
	{engine.ErrSignature, "signature invalid", true},
	{engine.ErrNoIdentity, "no identity for the encrypted archive", true},
	{engine.ErrChecksumMismatch, "checksum mismatch", true},
	{engine.ErrRowCountMismatch, "row count mismatch", true},
	{engine.ErrInvalidArchive, "invalid archive", true},
	{engine.ErrUnreadable, "invalid archive", true},
	{engine.ErrPlanChanged, "adoption plan changed", true},
	{engine.ErrNotFound, "backup not found", true},
	{engine.ErrExists, "backup already exists", true},
	{engine.ErrBucketRefused, "bucket not allowed", true},
	{engine.ErrInvalid, "invalid request", true},
	{pgtool.ErrNoMatchingClient, "no matching pg_dump", true},
	{engine.ErrNotEmpty, "target database not empty", true},
	// Permanent: a retry minutes later rarely finds the disk emptier, and
	// a forged size must not be retried in a loop.
	{engine.ErrNoSpace, "work dir full", true},
	// What a failed pg_restore, psql or pg_dump printed (pgtool.Classify):
	// the same archive against the same database fails the same way.
	{pgtool.ErrObjectExists, "object already exists", true},
	{pgtool.ErrUndefinedObject, "object does not exist", true},
	{pgtool.ErrSQLSyntax, "SQL syntax error", true},
	{pgtool.ErrConstraint, "constraint violation", true},
	{pgtool.ErrPermission, "permission denied", true},
	{pgtool.ErrNoDatabase, "database does not exist", true},
	{pgtool.ErrAuth, "postgres authentication failed", true},
	{pgtool.ErrUnreachable, "postgres unreachable", false},
	{store.ErrUnavailable, "store unavailable", false},
	// A bucket object overwritten under its read: the retry reads one
	// whole version.
	{store.ErrObjectChanged, "object changed while read", false},
	{ErrBusy, "waiting for another task", false},
	{context.DeadlineExceeded, "timed out", false},
}

// defaultClass covers every other failure (a tool's exit status, a server's
// refusal); its detail is in the worker's log and, for admins, in the
// task's error_detail.
const defaultClass = "task failed"

// Classify names the class of a task's error.
func Classify(err error) string {
	for _, c := range errorClasses {
		if errors.Is(err, c.err) {
			return c.class
		}
	}
	return defaultClass
}

// Permanent reports whether retrying err cannot help: it wraps any error
// the table marks permanent. Everything else, such as an unreachable
// store or database, is retried with backoff.
func Permanent(err error) bool {
	for _, c := range errorClasses {
		if c.permanent && errors.Is(err, c.err) {
			return true
		}
	}
	return false
}

// SplitTaskError splits an error text written by a worker ("class: detail")
// into its class and detail. A text without a known class (written by an
// older worker, or by asynq itself) is all detail, with the default class.
func SplitTaskError(text string) (class, detail string) {
	if text == "" {
		return "", ""
	}
	if c, rest, ok := strings.Cut(text, ": "); ok && knownClass(c) {
		return c, rest
	}
	return defaultClass, text
}

func knownClass(s string) bool {
	if s == defaultClass {
		return true
	}
	for _, c := range errorClasses {
		if c.class == s {
			return true
		}
	}
	return false
}
