package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
)

// fakeEngine records what the task functions asked of it and fails with
// err when set.
type fakeEngine struct {
	err      error
	backups  []engine.BackupRequest
	restores []engine.RestoreRequest
	deletes  [][]string
	verifies []string
	bases    []engine.BaseBackupRequest
}

func (f *fakeEngine) BaseBackup(_ context.Context, r engine.BaseBackupRequest) (*engine.Manifest, error) {
	f.bases = append(f.bases, r)
	return &engine.Manifest{Name: r.Name, Content: engine.ContentBase}, f.err
}

func (f *fakeEngine) Backup(_ context.Context, r engine.BackupRequest) (*engine.Manifest, error) {
	f.backups = append(f.backups, r)
	if r.Progress != nil {
		r.Progress(engine.Progress{Phase: "uploading", Bytes: 1})
	}
	return &engine.Manifest{Name: r.Name, SizeBytes: 1}, f.err
}

func (f *fakeEngine) Restore(_ context.Context, r engine.RestoreRequest) (*engine.RestoreResult, error) {
	f.restores = append(f.restores, r)
	return &engine.RestoreResult{Manifest: &engine.Manifest{Name: r.Name}, TargetDatabase: r.TargetDatabase.String()}, f.err
}

func (f *fakeEngine) Find(_ context.Context, name engine.Name, _ []string) (*engine.Manifest, []string, error) {
	return &engine.Manifest{Name: name, Database: "sourcedb"}, []string{store.MemoryName}, nil
}

func (f *fakeEngine) Delete(_ context.Context, name engine.Name, from []string) ([]string, error) {
	f.deletes = append(f.deletes, append([]string{name.String()}, from...))
	return from, f.err
}

func (f *fakeEngine) DeleteIf(ctx context.Context, name engine.Name, from []string, _ func(*engine.Manifest) error) ([]string, error) {
	return f.Delete(ctx, name, from)
}

func (f *fakeEngine) List(context.Context, []string) ([]engine.Entry, error) { return nil, f.err }

func (f *fakeEngine) Adopt(_ context.Context, r engine.AdoptRequest) (*engine.AdoptResult, error) {
	return &engine.AdoptResult{DryRun: r.DryRun}, f.err
}

func (f *fakeEngine) Drill(_ context.Context, name engine.Name, _ pgtool.Ident, _ *pgtool.Conn, _ engine.ProgressFunc) (*engine.DrillReport, error) {
	return &engine.DrillReport{Manifest: &engine.Manifest{Name: name}}, f.err
}

func (f *fakeEngine) Verify(_ context.Context, name engine.Name, _ string, _ bool) (*engine.Manifest, error) {
	f.verifies = append(f.verifies, name.String())
	return &engine.Manifest{Name: name}, f.err
}

// kinds are every worker kind, run on eng.
func kinds(eng *fakeEngine) []Kind {
	return []Kind{&BackupWorker{Engine: eng}, &RestoreWorker{Engine: eng}, &DeleteWorker{Engine: eng},
		&VerifyWorker{Engine: eng}, &PruneWorker{Engine: eng}, &DrillWorker{Engine: eng}, &AlertWorker{},
		&BucketBackupWorker{}, &BucketRestoreWorker{}, &AdoptWorker{Engine: eng}, &BaseBackupWorker{Engine: eng}}
}

func newTestWorker(eng *fakeEngine) (*Runtime, *asynq.ServeMux) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	rt := &Runtime{Log: logrus.NewEntry(l), ID: "test:1"}
	mux := asynq.NewServeMux()
	rt.Register(mux, kinds(eng)...)
	return rt, mux
}

func TestEveryTaskTypeHasOneWorkerKind(t *testing.T) {
	t.Parallel()
	var got []string
	for _, k := range kinds(&fakeEngine{}) {
		typ, _ := k.mount(&Runtime{})
		got = append(got, typ)
	}
	slices.Sort(got)
	if want := tasks.Types(); !slices.Equal(got, want) {
		t.Fatalf("worker kinds run %v, want every task type %v", got, want)
	}
}

func TestAdapterDecodesAndRunsEachTask(t *testing.T) {
	t.Parallel()
	eng := &fakeEngine{}
	_, mux := newTestWorker(eng)
	ctx := context.Background()
	o := tasks.Options{MaxRetry: 1}
	for _, p := range []tasks.Payload{
		tasks.BackupPayload{BackupName: "b1", Format: "tar", Stores: []string{store.MemoryName}},
		tasks.RestorePayload{BackupName: "b1", From: store.MemoryName},
		tasks.DeletePayload{BackupName: "b1", Stores: []string{store.MemoryName}},
		tasks.VerifyPayload{BackupName: "b1"},
	} {
		task, err := tasks.NewTask(p, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := mux.ProcessTask(ctx, task); err != nil {
			t.Fatalf("%s: %v", p.TaskType(), err)
		}
	}
	if len(eng.backups) != 1 || eng.backups[0].Name.String() != "b1" || eng.backups[0].Format != engine.FormatTar ||
		!slices.Equal(eng.backups[0].Stores, []string{store.MemoryName}) || eng.backups[0].Progress == nil {
		t.Errorf("backup request = %+v; want b1, tar, [memory], with a progress reporter", eng.backups)
	}
	// An empty target is resolved, to the backup's own database, before
	// the task function runs.
	if len(eng.restores) != 1 || eng.restores[0].TargetDatabase.String() != "sourcedb" || eng.restores[0].From != store.MemoryName {
		t.Errorf("restore request = %+v; want target sourcedb from memory", eng.restores)
	}
	if len(eng.deletes) != 1 || !slices.Equal(eng.deletes[0], []string{"b1", store.MemoryName}) {
		t.Errorf("delete = %v; want [b1 memory]", eng.deletes)
	}
	if !slices.Equal(eng.verifies, []string{"b1"}) {
		t.Errorf("verify = %v; want [b1]", eng.verifies)
	}
}

func TestAdapterClassifiesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		engineErr error
		payload   []byte
		skipRetry bool
	}{
		{"bad payload", nil, []byte("{not json"), true},
		{"exists", fmt.Errorf("backup x: %w", engine.ErrExists), nil, true},
		{"invalid", fmt.Errorf("backup x: %w", engine.ErrInvalid), nil, true},
		{"store down", fmt.Errorf("put: %w", store.ErrUnavailable), nil, false},
		{"plain failure", errors.New("pg_dump: exit status 1"), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, mux := newTestWorker(&fakeEngine{err: tt.engineErr})
			task, err := tasks.NewTask(tasks.BackupPayload{BackupName: "x"}, tasks.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.payload != nil {
				task = asynq.NewTask(tasks.TypeBackupCreate, tt.payload)
			}
			err = mux.ProcessTask(context.Background(), task)
			if err == nil {
				t.Fatal("task succeeded; want an error")
			}
			if got := errors.Is(err, asynq.SkipRetry); got != tt.skipRetry {
				t.Fatalf("error %v: SkipRetry = %v, want %v", err, got, tt.skipRetry)
			}
			if tt.engineErr != nil && !errors.Is(err, tt.engineErr) {
				t.Fatalf("error %v does not wrap the engine's %v", err, tt.engineErr)
			}
		})
	}
}

// TestWorkerParsesPayloadIdentifiers: a payload's format and databases are
// parsed where the worker decodes it: a bad one never reaches the engine,
// is ErrInvalid and is not retried.
func TestWorkerParsesPayloadIdentifiers(t *testing.T) {
	t.Parallel()
	for _, p := range []tasks.Payload{
		tasks.BackupPayload{BackupName: "x", Format: "zip"},
		tasks.BackupPayload{BackupName: "x", Database: "a;b"},
		tasks.RestorePayload{BackupName: "x", TargetDatabase: "a;b"},
		tasks.RestorePayload{BackupName: "x", Databases: []string{"shop", "a b"}},
	} {
		eng := &fakeEngine{}
		_, mux := newTestWorker(eng)
		task, err := tasks.NewTask(p, tasks.Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = mux.ProcessTask(context.Background(), task)
		if !errors.Is(err, engine.ErrInvalid) || !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("%+v: err = %v; want ErrInvalid, not retried", p, err)
		}
		if len(eng.backups)+len(eng.restores) != 0 {
			t.Errorf("%+v reached the engine", p)
		}
	}
}

func TestRetryDelayGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	f := RetryDelay(time.Second)
	for n, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 20: 10 * time.Minute} {
		for range 20 {
			d := f(n, nil, nil)
			if d < want*8/10 || d > want*12/10 {
				t.Fatalf("RetryDelay(1s)(%d) = %s, want %s ±20%%", n, d, want)
			}
		}
	}
}

// typesEnqueued records the types of the tasks enqueued.
type typesEnqueued []string

func (q *typesEnqueued) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	*q = append(*q, t.Type())
	return &asynq.TaskInfo{}, nil
}

// TestPruneAfterAScheduledBackup: a target with retention, or with pitr
// (its pitr_window prunes its base backups and WAL), is pruned after a
// scheduled backup; one with neither, or a manual backup, is not.
func TestPruneAfterAScheduledBackup(t *testing.T) {
	t.Parallel()
	set, err := policy.NewTargetSet([]policy.Target{
		{Name: "dumps", Database: "d", Retention: policy.Retention{KeepLast: 2}},
		{Name: "pitr", Database: "p"},
		{Name: "none", Database: "n"},
	})
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	for _, tc := range []struct {
		target    string
		scheduled bool
		want      int
	}{{"dumps", true, 1}, {"pitr", true, 1}, {"none", true, 0}, {"pitr", false, 0}} {
		q := &typesEnqueued{}
		ledger := &Ledger{Queue: q, TaskOptions: tasks.Options{MaxRetry: 1, Retention: time.Hour},
			PITR: map[string]policy.PITRArchive{"pitr": {Name: "pitr", Window: time.Hour}}, Log: logrus.NewEntry(l)}
		ledger.pruneAfter(context.Background(), set, tc.target, tc.scheduled)
		if len(*q) != tc.want || (tc.want == 1 && !slices.Equal(*q, []string{tasks.TypeBackupPrune})) {
			t.Errorf("%s (scheduled %v): enqueued %v, want %d prune", tc.target, tc.scheduled, *q, tc.want)
		}
	}
}
