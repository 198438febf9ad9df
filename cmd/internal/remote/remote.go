// Package remote is pgbackup's client mode: commands that drive a running
// service through its HTTP API, with one flag set per command, optional
// waiting with progress, JSON output, and exit codes scripts can branch on.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
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

// Commands are the remote commands, in the order usage lists them.
var Commands = []string{"backup", "restore", "verify", "delete", "list", "status", "cancel", "targets"}

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
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "status", "cancel", "targets":
		return true
	}
	for _, a := range args[1:] {
		if a == "--url" || a == "-url" || strings.HasPrefix(a, "--url=") || strings.HasPrefix(a, "-url=") {
			return true
		}
	}
	return getenv("PGBACKUP_URL") != ""
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

// common are the flags every remote command has.
type common struct {
	url, token, tokenFile string
	json, wait            bool
	timeout               time.Duration
}

func (c *common) register(fs *flag.FlagSet, waits bool) {
	fs.StringVar(&c.url, "url", "", "service URL, e.g. http://backup:8080 (default $PGBACKUP_URL)")
	fs.StringVar(&c.token, "token", "", "API token (default $PGBACKUP_TOKEN, or the file $PGBACKUP_TOKEN_FILE)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the API token")
	fs.BoolVar(&c.json, "json", false, "print machine-readable JSON on stdout")
	if waits {
		fs.BoolVar(&c.wait, "wait", false, "follow the task until it finishes, with progress on stderr")
		fs.DurationVar(&c.timeout, "timeout", 0, "with --wait, give up after this long (exit 1); 0 waits for ever")
	}
}

// client reaches the API with the token.
type client struct {
	base  string
	token string
	http  *http.Client
}

func (c *common) client(o IO) (*client, error) {
	base := c.url
	if base == "" {
		base = o.Getenv("PGBACKUP_URL")
	}
	if base == "" {
		return nil, fail(ExitUsage, "no service URL: give --url or set PGBACKUP_URL")
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fail(ExitUsage, "--url %q: want http://host:port or https://host:port", base)
	}
	token := c.token
	file := c.tokenFile
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
	return &client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends one request and decodes a JSON answer into out; an error
// status becomes an exitError with the service's message.
func (c *client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fail(ExitUsage, "%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fail(ExitUnavailable, "service unreachable: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fail(ExitUnavailable, "reading the answer: %v", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		msg := fmt.Sprintf("%s %s: %d %s", method, path, resp.StatusCode, e.Error)
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return fail(ExitNotFound, "%s", msg)
		case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden, resp.StatusCode == http.StatusTooManyRequests:
			return fail(ExitAuth, "%s", msg)
		case resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusBadGateway, resp.StatusCode == http.StatusGatewayTimeout:
			return fail(ExitUnavailable, "%s", msg)
		case resp.StatusCode == http.StatusBadRequest, resp.StatusCode == http.StatusUnprocessableEntity, resp.StatusCode == http.StatusUnsupportedMediaType:
			return fail(ExitUsage, "%s", msg)
		}
		return fail(ExitFailed, "%s", msg)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fail(ExitFailed, "%s %s: answer is not JSON: %v", method, path, err)
		}
	}
	return nil
}
