// Package remote is pgbackup's remote mode: commands that drive a running
// service through its HTTP API (handlers/client), with optional waiting
// with progress, JSON output, and exit codes scripts can branch on. The
// flags and help are the CLI's one face, in cmd/internal/cli.
package remote

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/autograph/pgbackup/cmd/internal/cli"
	"github.com/autograph/pgbackup/handlers/client"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1 // the task failed, or the request was refused (409)
	ExitUsage       = 2
	ExitNotFound    = 3
	ExitAuth        = 4
	ExitUnavailable = 5
)

// IO is what a command reads and writes; IsTerminal says whether Stderr
// is a terminal (progress is then drawn in place).
type IO struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	IsTerminal     bool
	// PollInterval is how often --wait asks for the task's state.
	PollInterval time.Duration
}

// exitError carries an exit code with its message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// Wanted reports whether args (a command and its flags) ask for the
// remote mode: a command only the service has, --url among the flags, or
// PGBACKUP_URL set.
func Wanted(args []string, getenv func(string) string) bool {
	return cli.ModeOf(args, getenv) == cli.Remote
}

// Run runs one remote command and returns its exit code.
func Run(ctx context.Context, args []string, o IO) int {
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	err := run(ctx, args, o)
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(o.Stderr, "pgbackup:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(o.Stderr, "pgbackup:", err)
	return ExitFailed
}

// connect makes the API client from the flags and the environment.
func connect(f *cli.Flags, o IO) (*client.Client, error) {
	base := f.URL
	if base == "" {
		base = o.Getenv("PGBACKUP_URL")
	}
	if base == "" {
		return nil, fail(ExitUsage, "no service URL: give --url or set PGBACKUP_URL")
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fail(ExitUsage, "--url %q: want http://host:port or https://host:port", base)
	}
	token := f.Token
	file := f.TokenFile
	if token == "" {
		token = o.Getenv("PGBACKUP_TOKEN")
	}
	if token == "" && file == "" {
		file = o.Getenv("PGBACKUP_TOKEN_FILE")
	}
	if token == "" && file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fail(ExitUsage, "token file: %v", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, fail(ExitUsage, "no token: give --token or --token-file, or set PGBACKUP_TOKEN or PGBACKUP_TOKEN_FILE")
	}
	cl, err := client.New(base, token)
	if err != nil {
		return nil, fail(ExitUsage, "%v", err)
	}
	return cl, nil
}

// exitFor gives an error of the API client its exit code: the status of
// a refused request, 5 for a service that did not answer.
func exitFor(err error) error {
	var e *client.Error
	switch {
	case errors.As(err, &e):
		return fail(exitCode(e.StatusCode), "%s", e.Error())
	case errors.Is(err, client.ErrUnreachable):
		return fail(ExitUnavailable, "%v", err)
	}
	return err
}

func exitCode(status int) int {
	switch status {
	case http.StatusNotFound:
		return ExitNotFound
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		return ExitAuth
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return ExitUnavailable
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusUnsupportedMediaType:
		return ExitUsage
	}
	return ExitFailed
}
