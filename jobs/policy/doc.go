// Package policy decides, without touching the queue or Redis: which
// targets exist and what they own (targets.go), when scheduled backups run
// and what their slot is named (schedule.go), which scheduled backups a
// retention keeps (retention.go, prune.go), and how far a target is from
// its recovery point objective (rpo.go). Everything here is a plain
// function of its arguments, tested with tables.
package policy
