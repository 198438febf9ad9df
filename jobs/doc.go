// Package jobs holds only subpackages, one concern each:
//
//   - tasks: the task contract (types, queues, payloads, constructors,
//     error classes), all that enqueueing code imports;
//   - worker: the worker runtime, one worker kind per task type;
//   - policy: targets, schedules, retention and prune selection, RPO age,
//     with no queue and no Redis;
//   - coord: the coordination state in Redis; every key in coord/keys.go;
//   - scheduling: asynq's scheduler for each target's slots, the RPO watcher;
//   - alert: webhook events and the alerter that enqueues them;
//   - engine, pgtool: the backup engine, with no queue in it.
package jobs
