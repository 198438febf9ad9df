package handlers

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// pageCSP is the backups page's Content-Security-Policy: its own script and
// style files only, no inline script, calls to this origin only, never in a
// frame.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// securityHeaders is set on every response: no MIME sniffing, no framing
// (clickjacking), no Referer leaking paths to other sites.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(c.Request().URL.Path, "/ui/") {
			h.Set("Content-Security-Policy", pageCSP)
		}
		return next(c)
	}
}

// crossOriginGuard refuses unsafe methods (POST, DELETE, PATCH, PUT) sent
// by a browser from another origin, on every route. A browser keeps Basic
// credentials for /monitoring/ once an admin has used it, so without this a
// hostile page could drive the queue UI's actions in the admin's name.
// Requests without Sec-Fetch-Site or Origin (curl, the CLI, other services)
// are not browsers' and pass.
func crossOriginGuard() echo.MiddlewareFunc {
	cop := http.NewCrossOriginProtection()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := cop.Check(c.Request()); err != nil {
				return errCrossOrigin
			}
			return next(c)
		}
	}
}

// failureLimiter counts failed authentications per client address in fixed
// one-minute windows. An address over the limit has its failures answered
// 429 until its window ends; a request with a valid token is never counted
// or refused, whatever its address did (see API.authenticate).
type failureLimiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]*failures
}

type failures struct {
	start time.Time
	count int
}

func newFailureLimiter(limit int) *failureLimiter {
	return &failureLimiter{limit: limit, window: time.Minute, now: time.Now, seen: map[string]*failures{}}
}

// blocked reports whether addr is over the limit, and for how long.
func (l *failureLimiter) blocked(addr string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.seen[addr]
	if !ok {
		return 0, false
	}
	left := f.start.Add(l.window).Sub(l.now())
	if left <= 0 {
		delete(l.seen, addr)
		return 0, false
	}
	return left, f.count >= l.limit
}

// fail records one failed authentication from addr.
func (l *failureLimiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f, ok := l.seen[addr]
	if !ok || now.Sub(f.start) >= l.window {
		// Forget finished windows now and then so that the map stays as
		// small as the set of addresses failing right now.
		if len(l.seen) > 10000 {
			for a, old := range l.seen {
				if now.Sub(old.start) >= l.window {
					delete(l.seen, a)
				}
			}
		}
		f = &failures{start: now}
		l.seen[addr] = f
	}
	f.count++
}

// tooManyFailures answers 429 with the seconds until the window ends.
func tooManyFailures(c echo.Context, left time.Duration) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(left.Seconds()))))
	return errTooManyFailures
}
