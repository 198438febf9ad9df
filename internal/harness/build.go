package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// Module is the service's module path; programs are built by package path
// under it, so a build works from any directory inside the module.
const Module = "github.com/autograph/pgbackup"

// The service's programs: each is built from Module/cmd/<name> into a
// binary of that name.
const (
	API       = "api"
	Worker    = "worker"
	Scheduler = "scheduler"
	CLI       = "pgbackup"
	Archiver  = "archiver"
)

// Programs are all of the service's programs, what Build builds when
// given none.
var Programs = []string{API, Worker, Scheduler, Archiver, CLI}

// BuildOptions tune Build; the zero value builds with "go" from PATH,
// output to this process's stderr.
type BuildOptions struct {
	// Go is the go command; "go" when empty.
	Go string
	// Env is added to this process's environment (CGO_ENABLED=0, say).
	Env []string
	// Stdout and Stderr receive the compiler's output; os.Stderr when nil.
	Stdout, Stderr io.Writer
}

// Build compiles programs (all of Programs when none is given) into dir,
// one binary each, by package path: the working directory only has to be
// inside the module.
func Build(ctx context.Context, dir string, opts BuildOptions, programs ...string) error {
	if len(programs) == 0 {
		programs = Programs
	}
	goCmd := opts.Go
	if goCmd == "" {
		goCmd = "go"
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, p := range programs {
		args = append(args, Module+"/cmd/"+p)
	}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stdout, cmd.Stderr = orStderr(opts.Stdout), orStderr(opts.Stderr)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %v: %w", programs, err)
	}
	return nil
}

func orStderr(w io.Writer) io.Writer {
	if w == nil {
		return os.Stderr
	}
	return w
}
