package jobs

import (
	"context"
	"errors"
	"strings"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// errorClasses name what went wrong in words safe to show anyone who may
// read task status: no host, user, path or tool output. The first match
// wins, so more specific errors come first.
var errorClasses = []struct {
	err   error
	class string
}{
	{errCancelled, "cancelled"},
	{errBadPayload, "invalid task"},
	{engine.ErrSignature, "signature invalid"},
	{engine.ErrNoIdentity, "no identity for the encrypted archive"},
	{engine.ErrChecksumMismatch, "checksum mismatch"},
	{engine.ErrRowCountMismatch, "row count mismatch"},
	{engine.ErrInvalidArchive, "invalid archive"},
	{engine.ErrUnreadable, "invalid archive"},
	{engine.ErrNotFound, "backup not found"},
	{engine.ErrExists, "backup already exists"},
	{engine.ErrInvalid, "invalid request"},
	{pgtool.ErrNoMatchingClient, "no matching pg_dump"},
	{pgtool.ErrUnreachable, "postgres unreachable"},
	{pgtool.ErrAuth, "postgres authentication failed"},
	{store.ErrUnavailable, "store unavailable"},
	{ErrBusy, "waiting for another task"},
	{context.DeadlineExceeded, "timed out"},
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
