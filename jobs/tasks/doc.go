// Package tasks is the contract between the programs that enqueue tasks
// (the API, the scheduler, the alerter) and the workers that run them, in
// asynq's "tasks package" pattern: task type names and queues (types.go),
// payloads (payloads.go), constructors that bake in each type's queue,
// retries, timeout and retention (task.go), the reservations a task holds
// (reservations.go), the results the API reads back (results.go) and the
// one table of error classes (errors.go).
//
// Task type names, queue names and payload JSON are the wire format
// between programs of possibly different versions: they never change.
//
// To add a task type: a constant in types.go, a payload struct with a
// TaskType method in payloads.go, a line in the specs table in task.go,
// and a worker kind in jobs/worker.
//
// This package runs no task and touches no Redis key of ours: enqueueing
// code imports it without the worker runtime.
package tasks
