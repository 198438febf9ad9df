package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench/services"
	"github.com/autograph/pgbackup/jobs/pgtool"
)

// config is what the demo reads from its environment.
type config struct {
	NonInteractive bool `env:"DEMO_NONINTERACTIVE"`
	Keep           bool `env:"DEMO_KEEP"`
	APIPort        int  `env:"DEMO_API_PORT"`
}

// demo is one run: what it started, so that it can stop all of it.
type demo struct {
	cfg config
	out output

	goCmd string
	root  string // the repository, where bin/ is built
	dir   string // the scratch directory
	bench *services.Bench
	env   services.Env
	pg    pgtool.Conn
	progs *harness.Group // the api, workers and scheduler, once started
	api   *client.Client

	adminToken, viewerToken string
	// signingKey signs and checks every manifest of the demo.
	signingKey string
	// backupName is the demo's backup, once restored and compared.
	backupName string
}

// run does the demo and stops everything it started, whatever happened;
// it reports its own errors on stderr.
func run(ctx context.Context, stdout, stderr io.Writer) (err error) {
	d := &demo{out: newOutput(stdout, stderr)}
	if err := env.Parse(&d.cfg); err != nil {
		d.out.warn("ERROR: %v", err)
		return err
	}
	defer func() { err = d.finish(ctx, err) }()
	steps := []func(context.Context) error{
		d.prerequisites, d.startBench, d.build, d.createSample, d.startPrograms,
		d.backupAndRestore, d.summary, d.wait,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) prerequisites(ctx context.Context) error {
	d.out.step("Checking prerequisites")
	var err error
	if d.goCmd, err = services.GoCommand(); err != nil {
		return err
	}
	version, err := exec.CommandContext(ctx, d.goCmd, "version").Output()
	if err != nil {
		return fmt.Errorf("go version: %w", err)
	}
	d.out.say("go: %s", strings.TrimSpace(string(version)))
	if d.root, err = os.Getwd(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(d.root, "cmd", "api")); err != nil {
		return fmt.Errorf("run the demo from the repository root (make demo): %w", err)
	}
	return services.Install(ctx, d.benchOptions())
}

func (d *demo) benchOptions() services.Options {
	opts := services.OptionsFromEnv(os.LookupEnv)
	opts.Log = d.out.errOut
	return opts
}

func (d *demo) startBench(ctx context.Context) (err error) {
	if d.dir, err = os.MkdirTemp("", "pgbackup-demo."); err != nil {
		return err
	}
	for _, sub := range []string{"logs", "backups", "work"} {
		if err := os.Mkdir(filepath.Join(d.dir, sub), 0o755); err != nil {
			return err
		}
	}
	benchDir := filepath.Join(d.dir, "bench")
	d.out.step("Starting a private PostgreSQL, Redis and MinIO in %s", benchDir)
	if d.bench, err = services.Start(ctx, benchDir, d.benchOptions()); err != nil {
		// Start stopped what it had started; Stop still removes the rest.
		d.bench, _ = services.Open(benchDir, d.benchOptions())
		return err
	}
	if d.env, err = d.bench.Env(); err != nil {
		return err
	}
	port, err := strconv.Atoi(d.env.PGPort)
	if err != nil {
		return fmt.Errorf("bench PostgreSQL port %q: %w", d.env.PGPort, err)
	}
	d.pg = pgtool.Conn{Host: d.env.PGHost, Port: port, User: d.env.PGUser, Password: d.env.PGPassword, SSLMode: "disable"}
	return nil
}

func (d *demo) build(ctx context.Context) error {
	d.out.step("Building bin/api, bin/worker, bin/scheduler, bin/pgbackup")
	err := harness.Build(ctx, filepath.Join(d.root, "bin"), harness.BuildOptions{
		Go: d.goCmd, Env: []string{"CGO_ENABLED=0"}, Stdout: d.out.out, Stderr: d.out.errOut})
	if err != nil {
		return err
	}
	d.out.say("done")
	return nil
}

// finish stops what the demo started, in reverse order, with a context of
// its own (ctx may be what ended the demo), and keeps the scratch
// directory when asked to or when the demo failed.
func (d *demo) finish(ctx context.Context, err error) error {
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintln(d.out.out)
		d.out.say("%v, stopping everything...", context.Cause(ctx))
	case err != nil:
		d.out.warn("ERROR: %v", err)
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if d.progs != nil {
		d.out.step("Stopping the API, workers and scheduler")
		d.stopPrograms()
	}
	if d.bench != nil {
		d.out.step("Stopping PostgreSQL, Redis and MinIO")
		if serr := d.bench.Stop(stopCtx); serr != nil {
			d.out.warn("stopping the bench in %s failed: %v", d.bench.Dir(), serr)
			err = errors.Join(err, serr)
		}
	}
	if d.dir != "" {
		if d.cfg.Keep || err != nil {
			d.out.say("logs kept in %s (remove with: rm -rf %s)", filepath.Join(d.dir, "logs"), d.dir)
		} else if rerr := os.RemoveAll(d.dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		d.out.warn("the demo failed; everything it started is stopped")
		return err
	}
	fmt.Fprintf(d.out.out, "%sdemo stopped; nothing left running.%s\n", d.out.green, d.out.reset)
	return nil
}

// wait keeps the service running until a signal (the normal end: success)
// or until one of the programs exits (a failure).
func (d *demo) wait(ctx context.Context) error {
	if d.cfg.NonInteractive {
		d.out.step("DEMO_NONINTERACTIVE=1: stopping")
		return nil
	}
	fmt.Fprintf(d.out.out, "\n%sPress Ctrl-C to stop everything.%s\n", d.out.bold, d.out.reset)
	procs := d.progs.Procs()
	exited := make(chan *harness.Proc, len(procs))
	for _, p := range procs {
		go func() { <-p.Done(); exited <- p }()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(d.out.out)
		d.out.say("%v, stopping everything...", context.Cause(ctx))
		return nil
	case p := <-exited:
		return p.ExitError()
	}
}

// apiPort is DEMO_API_PORT, else 8080 when free, else a free port.
func (d *demo) apiPort() (int, error) {
	if d.cfg.APIPort != 0 {
		if !portFree(d.cfg.APIPort) {
			return 0, fmt.Errorf("DEMO_API_PORT=%d is in use", d.cfg.APIPort)
		}
		return d.cfg.APIPort, nil
	}
	if portFree(8080) {
		return 8080, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free port for the API: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// token returns a random API token with a readable prefix.
func token(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it)
	return prefix + hex.EncodeToString(b)
}

// output writes the demo's steps to stdout and its warnings to stderr, in
// colour on a terminal.
type output struct {
	out, errOut             io.Writer
	bold, green, red, reset string
}

func newOutput(stdout, stderr io.Writer) output {
	o := output{out: stdout, errOut: stderr}
	if f, ok := stdout.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			o.bold, o.green, o.red, o.reset = "\033[1m", "\033[32m", "\033[31m", "\033[0m"
		}
	}
	return o
}

func (o output) step(format string, args ...any) {
	fmt.Fprintf(o.out, "\n%s==> %s%s\n", o.bold, fmt.Sprintf(format, args...), o.reset)
}

func (o output) say(format string, args ...any) {
	fmt.Fprintf(o.out, "    %s\n", fmt.Sprintf(format, args...))
}

func (o output) warn(format string, args ...any) {
	fmt.Fprintf(o.errOut, "%sdemo: %s%s\n", o.red, fmt.Sprintf(format, args...), o.reset)
}
