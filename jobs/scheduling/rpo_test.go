package scheduling

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
)

// TestRPOWatcherUsesArchivedThrough: a pitr target without any dump is
// breached when its WAL archive's archived_through is older than the RPO,
// and recovers when the archiver publishes a current one.
func TestRPOWatcherUsesArchivedThrough(t *testing.T) {
	env := testbench.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr, DB: 15})
	defer rdb.Close()
	ctx := context.Background()
	name := testbench.UniqueName("rpowal")
	targets, err := policy.NewTargetSet([]policy.Target{{Name: name, Database: name, Format: engine.FormatCustom, RPO: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	state := coord.NewState(rdb)
	q := &recordingQueue{}
	l := logrus.New()
	l.SetOutput(io.Discard)
	w := &RPOWatcher{Targets: targets, State: state, Backups: fixedList{},
		Alerts: &alert.Alerter{URLs: []string{"http://hook.example/x"}, Queue: q}, Log: logrus.NewEntry(l)}
	publish := func(through time.Time) {
		t.Helper()
		if err := state.RecordWAL(ctx, []string{name}, coord.WALStatus{Archive: name, ArchivedThrough: through, Updated: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := w.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	publish(time.Now().Add(-10 * time.Minute))
	if len(q.events) != 1 || q.events[0].Event != alert.EventRPOBreached || !strings.Contains(q.events[0].Error, "WAL archived through") {
		t.Fatalf("archived_through 10 min ago, RPO 1 min: alerts %+v, want one rpo breach naming archived_through", q.events)
	}
	publish(time.Now())
	if len(q.events) != 2 || q.events[1].Event != alert.EventRPORecovered {
		t.Fatalf("archived_through now: alerts %+v, want the recovery", q.events)
	}
}
