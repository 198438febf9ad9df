package worker

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
)

// TestBaseBackupWorker: a base backup of a pitr target copies its WAL
// archive's server, with the archive's credentials, into the archive's
// stores, named after the target and the time (or, scheduled, after its
// task ID); a target without pitr, or unknown, is ErrInvalid, not
// retried, and never reaches the engine.
func TestBaseBackupWorker(t *testing.T) {
	t.Parallel()
	targets, err := policy.NewTargetSet([]policy.Target{{Name: "app", Database: "app"}, {Name: "plain", Database: "plain"}})
	if err != nil {
		t.Fatal(err)
	}
	archive := WALArchive{Name: "app", Conn: pgtool.Conn{Host: "db", Port: 5432, User: "replicator"}, Stores: []string{store.MinIOName}}
	run := func(p tasks.BaseBackupPayload) (*fakeEngine, error) {
		eng := &fakeEngine{}
		l := logrus.New()
		l.SetOutput(io.Discard)
		mux := asynq.NewServeMux()
		(&Runtime{Log: logrus.NewEntry(l), ID: "test:1"}).Register(mux, &BaseBackupWorker{Engine: eng, Targets: targets,
			WALArchiveOf: func(target string) (WALArchive, bool) { return archive, target == "app" }})
		task, err := tasks.NewTask(p, tasks.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return eng, mux.ProcessTask(context.Background(), task)
	}

	eng, err := run(tasks.BaseBackupPayload{Target: "app"})
	if err != nil {
		t.Fatalf("base backup of a pitr target: %v", err)
	}
	if len(eng.bases) != 1 {
		t.Fatalf("engine asked for %d base backups, want 1", len(eng.bases))
	}
	r := eng.bases[0]
	if !strings.HasPrefix(r.Name.String(), "app_base_") || r.Server == nil || *r.Server != archive.Conn ||
		r.WALArchive != "app" || !slices.Equal(r.Stores, archive.Stores) || r.Target != "app" || r.Progress == nil {
		t.Errorf("request = %+v; want app_base_<time> on the archive's server and stores, with progress", r)
	}

	// ProcessTask outside a server has no task ID: the scheduled name is
	// resolve's.
	p, err := (&BaseBackupWorker{}).resolve(context.Background(), tasks.BaseBackupPayload{Target: "app", Scheduled: true}, "app_base_20260102_030000")
	if err != nil || p.BackupName != "app_base_20260102_030000" {
		t.Errorf("scheduled base backup named %q (%v); want its task ID", p.BackupName, err)
	}

	for _, target := range []string{"plain", "nosuch"} {
		eng, err := run(tasks.BaseBackupPayload{Target: target})
		if !errors.Is(err, engine.ErrInvalid) || !errors.Is(err, asynq.SkipRetry) || len(eng.bases) != 0 {
			t.Errorf("base backup of target %s: %v (engine asked %d times); want ErrInvalid, not retried, engine untouched", target, err, len(eng.bases))
		}
	}
}
