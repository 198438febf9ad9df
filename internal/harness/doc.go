// Package harness runs the service's own programs (api, worker, scheduler
// and the pgbackup CLI) as separate processes against a test bench, for
// the end-to-end tests, the benchmark and the demo alike.
//
// It builds the programs once by package path ([Build]), starts each with
// an environment of its own and its output in a log file ([Group.Start]),
// waits for conditions rather than sleeping ([Proc.WaitHTTP],
// [Proc.WaitPort], [Proc.WaitLog], [Poll]), and stops them gracefully
// (SIGTERM, then SIGKILL after a grace period) or abruptly ([Proc.Kill])
// for fault tests. Nothing here needs a *testing.T: errors are returned,
// and [Group.StopOnCleanup] takes the small [Cleaner] interface that
// testing.TB satisfies.
package harness
