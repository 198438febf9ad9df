// Package e2e holds end-to-end tests: the real api, worker and scheduler
// binaries, built and started as separate processes by internal/harness
// against the test bench's PostgreSQL, Redis and MinIO, driven over HTTP.
// It has no code of its own.
package e2e
