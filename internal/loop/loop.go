// Package loop runs the service's background work: a function repeated
// every interval (the RPO watcher, the name index refresh, the coming WAL
// archiver) or run once in the background (the catalogue writer), with one
// rule for stopping (the context) and one for errors (logged, never
// fatal; an error caused by stopping is not logged).
package loop

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"
)

// Func is one run of a background job.
type Func func(ctx context.Context) error

// Every calls fn at once and then every interval until ctx ends. A failed
// run is logged as msg and the loop goes on: the next run may succeed.
func Every(ctx context.Context, interval time.Duration, log *logrus.Entry, msg string, fn Func) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		Once(ctx, log, msg, fn)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Once calls fn and logs its error as msg, unless the error only says
// that the work was stopped.
func Once(ctx context.Context, log *logrus.Entry, msg string, fn Func) {
	err := fn(ctx)
	if err == nil || ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return
	}
	log.WithError(err).Warn(msg)
}

// Service is Every running in a goroutine of its own, for programs that
// must wait for it to end before they exit.
type Service struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs Every(ctx, interval, log, msg, fn) in the background until
// ctx ends or Stop is called.
func Start(ctx context.Context, interval time.Duration, log *logrus.Entry, msg string, fn Func) *Service {
	ctx, cancel := context.WithCancel(ctx)
	s := &Service{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		Every(ctx, interval, log, msg, fn)
	}()
	return s
}

// Stop ends the loop and waits for a run under way to return. A nil
// Service (nothing was started) stops at once.
func (s *Service) Stop() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
}
