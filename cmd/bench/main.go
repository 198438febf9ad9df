// Command bench measures pgbackup's streaming backup and restore against
// the old way (pg_dump to a file, then upload the file) and against a bare
// pg_dump, on a generated database of about 800 MB. It runs against the
// test bench that cmd/testbench started (PGBACKUP_TEST_* variables); `make
// bench` sets that up.
//
//	bench [-rows N] [-db NAME] [-pgbackup bin/pgbackup] [-max-rss-mib 200]
//	bench put -bucket B -key K -file F   (child: FPutObject, the old way's upload)
//	bench get -bucket B -key K -file F   (child: FGetObject, the old way's download)
//
// The put and get modes exist so that the old way's upload runs in a process
// of its own whose peak RSS can be measured like the engine's.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
