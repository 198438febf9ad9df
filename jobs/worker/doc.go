// Package worker is the worker runtime: it runs the tasks of jobs/tasks.
//
// Each task type has one worker kind, a struct holding only what it uses
// (BackupWorker in backup.go, RestoreWorker in restore.go, ...), with a
// Work method taking the decoded payload, as river's Worker[T]. The
// generic adapter (adapter.go) does the rest for every kind: decode, log,
// progress, reservations and cancellation (guard.go), retry
// classification, and the alert when a task fails for good. server.go
// builds the asynq servers.
//
// To add a task kind: its contract in jobs/tasks, then a worker struct
// here with Work and mount (see backup.go), registered in cmd/worker.
package worker
