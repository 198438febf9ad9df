package handlers

import (
	"net/http"
	"time"
)

// Timeouts bound how long one connection may hold the API server. Without
// them a client that sends its headers or body a byte at a time keeps a
// connection and a goroutine for ever, and a few thousand such clients take
// the API down.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included (bodies are at
	// most BodyLimit, 1 MiB by default).
	Read time.Duration
	// Write bounds a request from the end of its headers to the end of its
	// response. It must outlast the slowest route: a cancel waits up to
	// cancelWait for the task's handler, a listing reads every store.
	Write time.Duration
	// Idle bounds a kept-alive connection between requests.
	Idle time.Duration
	// MaxHeaderBytes caps a request's headers; more is answered 431.
	MaxHeaderBytes int
}

// DefaultTimeouts are the API server's: generous for any real client on a
// slow link, short enough that a trickling one is cut off within a minute.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		ReadHeader:     10 * time.Second,
		Read:           30 * time.Second,
		Write:          2 * time.Minute,
		Idle:           2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
}

// NewHTTPServer is the API's http.Server: h served on addr within t.
func NewHTTPServer(addr string, h http.Handler, t Timeouts) *http.Server {
	return &http.Server{
		Addr: addr, Handler: h,
		ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle,
		MaxHeaderBytes: t.MaxHeaderBytes,
	}
}
