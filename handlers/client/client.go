package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one API instance. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends requests through hc (its timeout, transport and
// TLS settings) instead of the default client, which times out after 30 s.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}

// WithTLSConfig trusts what cfg trusts (a private CA, a client
// certificate) on a transport of the client's own; apply it after
// WithHTTPClient to change that client's transport instead.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		hc := *c.http
		hc.Transport = tr
		c.http = &hc
	}
}

// maxAnswer bounds how much of an answer is read: a listing of many
// thousand backups fits, a runaway body does not fill the memory.
const maxAnswer = 64 << 20

// New returns a client of the service at baseURL (http://host:port or
// https://host:port, optionally with a path prefix) that presents token as
// a bearer token; an empty token sends none (for /healthz and /readyz).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http://host:port or https://host:port", baseURL)
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL is the service URL the client was made with, without a
// trailing slash.
func (c *Client) BaseURL() string { return c.base }

// CallOption sets something on one request.
type CallOption func(*call)

type call struct {
	header http.Header
	answer *Response
}

// WithIdempotencyKey makes a create, restore, delete or verify safe to
// repeat: the service replays its first 2xx answer to the same key for
// 24 h instead of starting the work again.
func WithIdempotencyKey(key string) CallOption {
	return func(c *call) { c.header.Set("Idempotency-Key", key) }
}

// WithRequestID sends id as X-Request-ID, which the service logs and
// records on the task it enqueues.
func WithRequestID(id string) CallOption {
	return func(c *call) { c.header.Set("X-Request-ID", id) }
}

// Response is the HTTP side of an answer, for callers that need more than
// the decoded value: the raw body (to print it unchanged), the status and
// the headers (Idempotent-Replayed, X-Request-ID).
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// WithResponse fills r with the answer's status, headers and body, for a
// successful call and a failed one alike.
func WithResponse(r *Response) CallOption {
	return func(c *call) { c.answer = r }
}

// ErrUnreachable is wrapped by every error of a request that got no
// answer: the service could not be reached, or the answer could not be
// read.
var ErrUnreachable = errors.New("service unreachable")

// ErrNotFound is matched (errors.Is) by an *Error with status 404, and by
// FindBackup's error for a backup the listing does not hold.
var ErrNotFound = errors.New("not found")

// Error is an answer with a status outside 2xx.
type Error struct {
	// Method and Path are the request's (Path with its query string).
	Method, Path string
	StatusCode   int
	// Message is the API's error text ({"error": ...}), or the body's text
	// when it is not the API's JSON.
	Message string
	// Body is the answer as received.
	Body []byte
	// RetryAfter is the Retry-After header (429 after failed logins); zero
	// when absent.
	RetryAfter time.Duration
	// RequestID is the X-Request-ID the service answered with, for finding
	// the request in its log.
	RequestID string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.StatusCode, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// StatusOf is the HTTP status of an *Error in err's chain, or 0 when err
// is not an answer from the service.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// do sends one request (body as JSON when not nil) and decodes a 2xx
// answer into out when out is not nil; a *[]byte out gets the answer as
// it came.
func (c *Client) do(ctx context.Context, method, path string, body, out any, opts []CallOption) error {
	cl := call{header: http.Header{}}
	for _, o := range opts {
		o(&cl)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
		cl.header.Set("Content-Type", "application/json")
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range cl.header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%w: reading the answer to %s %s: %w", ErrUnreachable, method, path, err)
	}
	if cl.answer != nil {
		*cl.answer = Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: raw}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(method, path, resp, raw)
	}
	if text, ok := out.(*[]byte); ok {
		*text = raw // an answer that is not JSON (GET /metrics)
		return nil
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: answer is not JSON: %w", method, path, err)
		}
	}
	return nil
}

func answerError(method, path string, resp *http.Response, raw []byte) *Error {
	e := &Error{Method: method, Path: path, StatusCode: resp.StatusCode, Body: raw, RequestID: resp.Header.Get("X-Request-ID")}
	var msg struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &msg) == nil && msg.Error != "" {
		e.Message = msg.Error
	} else {
		e.Message = strings.TrimSpace(string(raw))
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := time.ParseDuration(s + "s"); err == nil && n >= 0 {
			e.RetryAfter = n
		} else if at, err := http.ParseTime(s); err == nil {
			e.RetryAfter = max(0, time.Until(at))
		}
	}
	return e
}
