// Command demo runs the whole service on this machine, end to end: a
// private PostgreSQL, Redis and MinIO (the test bench) in a scratch
// directory, the API, two workers and a scheduler built from this tree, a
// sample database demo_source, one backup and one restore of it into
// demo_restored through the API, and a comparison of the two databases.
// Then it prints the URLs and tokens and keeps everything running until
// Ctrl-C, which stops every process it started and removes the scratch
// directory. `make demo` (scripts/demo.sh) runs it from the repository
// root.
//
//	DEMO_NONINTERACTIVE=1   do everything, then stop at once (exit 0 on success)
//	DEMO_KEEP=1             keep the scratch directory (logs, archives) at exit
//	DEMO_API_PORT=N         listen on N instead of 8080 (or a free port)
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Ctrl-C also ends a `| tee` the demo may be piped into: a write to
	// the closed pipe must fail like any other, not kill the demo before
	// it has stopped what it started.
	signal.Ignore(syscall.SIGPIPE)
	// Signals stay caught until the end: a second Ctrl-C must not cut the
	// cleanup short. SIGHUP: the terminal was closed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, os.Stdout, os.Stderr); err != nil {
		os.Exit(1) // run has said why
	}
}
