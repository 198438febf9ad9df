package loop

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func testLog() (*logrus.Entry, *bytes.Buffer) {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	return logrus.NewEntry(l), &buf
}

func TestEveryRunsAtOnceAndUntilStopped(t *testing.T) {
	t.Parallel()
	log, buf := testLog()
	var runs atomic.Int32
	s := Start(context.Background(), 10*time.Millisecond, log, "run failed", func(context.Context) error {
		runs.Add(1)
		return errors.New("boom")
	})
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.Stop()
	n := runs.Load()
	if n < 3 {
		t.Fatalf("ran %d times in 5 s; want at least 3", n)
	}
	time.Sleep(30 * time.Millisecond)
	if runs.Load() != n {
		t.Fatal("the loop ran after Stop returned")
	}
	if !strings.Contains(buf.String(), "run failed") || !strings.Contains(buf.String(), "boom") {
		t.Fatalf("a failed run was not logged: %q", buf.String())
	}
}

func TestOnceDoesNotLogStopping(t *testing.T) {
	t.Parallel()
	log, buf := testLog()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Once(ctx, log, "x", func(context.Context) error { return errors.New("after the end") })
	Once(context.Background(), log, "x", func(context.Context) error { return context.Canceled })
	if buf.Len() != 0 {
		t.Fatalf("logged an error caused by stopping: %q", buf.String())
	}
	var nilService *Service
	nilService.Stop()
}
