// Package coord is the coordination state the API, the workers and the
// schedulers share in Redis, beside the queue: reservations and
// cancellation marks (locks.go), the signing key in use
// (signingkey.go), what was observed of each target (state.go), the name
// index (names.go), idempotent requests (idempotency.go), the audit trail
// (audit.go) and enqueueing that waits for replicas (replicated.go).
//
// Every Redis key of ours is built in keys.go, with its hash tag explained.
package coord
