package handlers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/store"
)

// Errors the handlers return; errorHandler maps every error to a status in
// this one place.
var (
	errBadRequest       = errors.New("bad request")
	errConflict         = errors.New("conflict")
	errTaskNotFound     = errors.New("task not found")
	errTargetNotFound   = errors.New("target not found")
	errQueueUnavailable = errors.New("queue unavailable (redis unreachable)")
	errUnauthorized     = errors.New("missing or invalid bearer token")
	errForbidden        = errors.New("this token may not use this route")
	errCrossOrigin      = errors.New("cross-origin request refused")
	errTooManyFailures  = errors.New("too many failed authentications from this address; retry later")
	errUnsupportedMedia = errors.New("request body must be sent as Content-Type: application/json")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// statusOf maps an error to an HTTP status and the message shown to the
// client. Unexpected errors are reported as 500 with a generic message: the
// detail (which may name hosts or paths) goes to the log only.
func statusOf(err error) (int, string) {
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		return he.Code, fmt.Sprint(he.Message)
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, errForbidden), errors.Is(err, errCrossOrigin), errors.Is(err, engine.ErrUnsignedRefused),
		errors.Is(err, engine.ErrBucketRefused):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, errTooManyFailures):
		return http.StatusTooManyRequests, err.Error()
	case errors.Is(err, errUnsupportedMedia):
		return http.StatusUnsupportedMediaType, err.Error()
	case errors.Is(err, errBadRequest), errors.Is(err, engine.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, engine.ErrNotFound), errors.Is(err, errTaskNotFound), errors.Is(err, errTargetNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, engine.ErrExists), errors.Is(err, errConflict), errors.Is(err, asynq.ErrTaskIDConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, errQueueUnavailable):
		return http.StatusServiceUnavailable, errQueueUnavailable.Error()
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, "backup store unreachable"
	}
	return http.StatusInternalServerError, "internal error"
}

func (a *API) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := statusOf(err)
	if code >= 500 {
		a.d.Log.WithError(err).WithField("path", c.Request().URL.Path).Error("request failed")
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(code)
		return
	}
	_ = c.JSON(code, map[string]string{"error": msg})
}
