package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs/coord"
)

// IdempotencyStore keeps the first response to each Idempotency-Key (a
// *coord.Idempotency); see coord.Idempotency for the contract.
type IdempotencyStore interface {
	Begin(ctx context.Context, key, fingerprint string) (*coord.StoredResponse, error)
	Finish(ctx context.Context, key string, r coord.StoredResponse) error
	Abort(ctx context.Context, key string) error
}

var (
	errIdempotencyMismatch = errors.New("Idempotency-Key was already used with another request")
	errIdempotencyBusy     = errors.New("a request with this Idempotency-Key is still being served; retry shortly")
)

const (
	requestIDHeader   = "X-Request-ID"
	idempotencyHeader = "Idempotency-Key"
	requestIDKey      = "pgbackup.request_id"
)

// Request IDs and idempotency keys are printable ASCII without spaces, so
// they are safe in headers, logs and Redis keys.
var (
	requestIDRe   = regexp.MustCompile(`^[A-Za-z0-9._:/+=@-]{1,128}$`)
	idempotencyRe = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)
)

// requestID takes the caller's X-Request-ID (when it is a sane one) or
// makes one, returns it, and keeps it for the request log and the task.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(requestIDHeader)
		if !requestIDRe.MatchString(id) {
			id = uuid.NewString()
		}
		c.Set(requestIDKey, id)
		c.Response().Header().Set(requestIDHeader, id)
		return next(c)
	}
}

func requestIDOf(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// idempotent makes a state-changing request safe to repeat: the first
// successful response to an Idempotency-Key is kept for the store's time
// to live (API_IDEMPOTENCY_TTL) and replayed for the same key and request (method, path, query and body);
// the same key with another request is 422. Keys belong to the token that
// used them. A request that fails (not 2xx) frees its key, so that it can
// be made again once the cause is fixed.
func (a *API) idempotent(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := c.Request().Header.Get(idempotencyHeader)
		if key == "" || a.d.Idempotency == nil {
			return next(c)
		}
		if !idempotencyRe.MatchString(key) {
			return badRequest("Idempotency-Key: want 1 to 255 printable characters without spaces")
		}
		req := c.Request()
		head, err := io.ReadAll(io.LimitReader(req.Body, a.d.BodyLimit+1))
		if err != nil {
			return badRequest("read body: %v", err)
		}
		req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(head), req.Body))
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", req.Method, req.URL.Path, req.URL.RawQuery)
		h.Write(head)
		fingerprint := hex.EncodeToString(h.Sum(nil))
		token, _ := c.Get(tokenKey).(string)
		scoped := TokenFingerprint(token) + ":" + key

		ctx := req.Context()
		stored, err := a.d.Idempotency.Begin(ctx, scoped, fingerprint)
		if err != nil {
			return fmt.Errorf("%w: %w", errQueueUnavailable, err)
		}
		if stored != nil {
			switch {
			case stored.Fingerprint != fingerprint:
				return echo.NewHTTPError(http.StatusUnprocessableEntity, errIdempotencyMismatch.Error())
			case stored.Status == 0:
				return fmt.Errorf("%w: %w", errConflict, errIdempotencyBusy)
			}
			c.Response().Header().Set("Idempotent-Replayed", "true")
			if task := taskIDIn(stored.Body); task != "" {
				c.Set(auditTask, task)
			}
			return c.JSONBlob(stored.Status, stored.Body)
		}

		rec := &recorder{ResponseWriter: c.Response().Writer}
		c.Response().Writer = rec
		if err := next(c); err != nil {
			c.Error(err)
		}
		bg := context.WithoutCancel(ctx)
		if status := c.Response().Status; status >= 200 && status < 300 {
			if err := a.d.Idempotency.Finish(bg, scoped, coord.StoredResponse{Fingerprint: fingerprint, Status: status, Body: rec.body.Bytes()}); err != nil {
				a.d.Log.WithError(err).Warn("could not keep the response for its Idempotency-Key")
			}
			return nil
		}
		if err := a.d.Idempotency.Abort(bg, scoped); err != nil {
			a.d.Log.WithError(err).Warn("could not free an Idempotency-Key")
		}
		return nil
	}
}

// recorder keeps a copy of the (small, JSON) response written through it.
type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.body.Len() < 1<<20 {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

func taskIDIn(body []byte) string {
	var t taskResponse
	if json.Unmarshal(body, &t) != nil {
		return ""
	}
	return t.TaskID
}
