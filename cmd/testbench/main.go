// Command testbench manages the test bench: a private PostgreSQL, Redis
// and MinIO on free loopback ports, all state in one directory (package
// internal/testbench/services). See usage in commands.go; the scripts in
// scripts/ and the Makefile call it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Signals arrive as values: `run` forwards each one to its command's
	// process tree, the other subcommands stop at the first.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	err := run(context.Background(), os.Args[1:], sigs)
	var code exitCode
	switch {
	case err == nil:
	case errors.As(err, &code):
		os.Exit(int(code))
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "testbench: %v\n%s", err, usage)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "testbench: ERROR:", err)
		os.Exit(1)
	}
}
