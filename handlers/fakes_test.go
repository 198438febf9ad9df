package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
)

const (
	testAdmin  = "admin-token-for-tests-0001"
	testViewer = "viewer-token-for-tests-001"
)

type fakeBackups struct {
	mu      sync.Mutex
	backups map[string][]string // name -> stores
	stores  []string            // configured stores
	err     error
	listed  [][]string // the from argument of each List call
	// entries, when set, is what List returns (already newest first, as
	// the engine sorts).
	entries []engine.Entry
}

func (f *fakeBackups) Find(_ context.Context, parsed engine.Name, from []string) (*engine.Manifest, []string, error) {
	name := parsed.String()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, nil, f.err
	}
	var where []string
	for _, s := range f.backups[name] {
		if len(from) == 0 || contains(from, s) {
			where = append(where, s)
		}
	}
	if len(where) == 0 {
		return nil, nil, fmt.Errorf("%w: %s", engine.ErrNotFound, name)
	}
	format := engine.FormatCustom
	if strings.HasPrefix(name, "plain") {
		format = engine.FormatPlain
	}
	return &engine.Manifest{Name: parsed, Format: format, Database: "origin_db"}, where, nil
}

func (f *fakeBackups) List(_ context.Context, from []string) ([]engine.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listed = append(f.listed, from)
	if f.entries != nil {
		return f.entries, nil
	}
	if f.err != nil {
		return nil, f.err
	}
	var out []engine.Entry
	for name, where := range f.backups {
		out = append(out, engine.Entry{Manifest: engine.Manifest{Name: engine.MustParseName(name), Format: engine.FormatCustom, SizeBytes: 3 << 20}, Locations: where})
	}
	return out, nil
}

func (f *fakeBackups) StoreNames() []string { return f.stores }

type fakeQueue struct {
	mu    sync.Mutex
	tasks []*asynq.Task
	err   error
	insp  *fakeInspector // enqueued tasks become visible to it, as in Redis
}

func (q *fakeQueue) EnqueueContext(_ context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, q.err
	}
	q.tasks = append(q.tasks, t)
	id := ""
	for _, o := range opts {
		if o.Type() == asynq.TaskIDOpt {
			id = o.Value().(string)
		}
	}
	info := &asynq.TaskInfo{ID: id, Type: t.Type(), Queue: "backup", State: asynq.TaskStatePending}
	if q.insp != nil {
		q.insp.tasks[id] = info
	}
	return info, nil
}

func (q *fakeQueue) count() int { q.mu.Lock(); defer q.mu.Unlock(); return len(q.tasks) }

type fakeInspector struct {
	// stuck keeps cancelled tasks active, like a handler that is slow to
	// return.
	stuck     bool
	tasks     map[string]*asynq.TaskInfo
	cancelled []string
	archived  []string
}

func (f *fakeInspector) GetTaskInfo(queue, id string) (*asynq.TaskInfo, error) {
	if ti, ok := f.tasks[id]; ok && ti.Queue == queue {
		return ti, nil
	}
	return nil, asynq.ErrTaskNotFound
}

func (f *fakeInspector) CancelProcessing(id string) error {
	f.cancelled = append(f.cancelled, id)
	if !f.stuck {
		f.tasks[id].State = asynq.TaskStateRetry
	}
	return nil
}

func (f *fakeInspector) ArchiveTask(queue, id string) error {
	f.archived = append(f.archived, id)
	f.tasks[id].State = asynq.TaskStateArchived
	return nil
}

type fakeLocks struct {
	mu        sync.Mutex
	held      map[string]string
	cancelled map[string]bool
}

func (l *fakeLocks) Acquire(_ context.Context, kind, key, owner string, _ time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := kind + ":" + key
	if h, ok := l.held[k]; ok && h != owner {
		return &tasks.BusyError{Scope: kind, Key: key, Holder: h}
	}
	l.held[k] = owner
	return nil
}

func (l *fakeLocks) Release(_ context.Context, kind, key, owner string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[kind+":"+key] == owner {
		delete(l.held, kind+":"+key)
	}
	return nil
}

func (l *fakeLocks) MarkCancelled(_ context.Context, id string, _ time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cancelled[id] = true
	return nil
}

type fixture struct {
	e       *echo.Echo
	backups *fakeBackups
	queue   *fakeQueue
	insp    *fakeInspector
	locks   *fakeLocks
	pingErr error
	logs    *strings.Builder
	audit   *fakeAudit
	// monitorCalls counts requests that reached the full queue UI.
	monitorCalls atomic.Int64
}

// fakeAudit is an in-memory AuditTrail.
type fakeAudit struct {
	mu      sync.Mutex
	entries []coord.AuditEntry
}

func (a *fakeAudit) Record(_ context.Context, e coord.AuditEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append([]coord.AuditEntry{e}, a.entries...)
	return nil
}

func (a *fakeAudit) Recent(_ context.Context, n int) ([]coord.AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.entries[:min(n, len(a.entries))], nil
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith lets a test change the dependencies before the server is
// built.
func newFixtureWith(t *testing.T, change func(*Deps)) *fixture {
	t.Helper()
	auth, err := NewAuth([]string{testAdmin}, []string{testViewer}, false)
	if err != nil {
		t.Fatal(err)
	}
	insp := &fakeInspector{tasks: map[string]*asynq.TaskInfo{}}
	f := &fixture{
		backups: &fakeBackups{
			backups: map[string][]string{"existing": {store.LocalName, store.MinIOName}, "only-minio": {store.MinIOName},
				"plain-one": {store.LocalName}},
			stores: []string{store.LocalName, store.MinIOName},
		},
		queue: &fakeQueue{insp: insp},
		insp:  insp,
		locks: &fakeLocks{held: map[string]string{}, cancelled: map[string]bool{}},
		logs:  &strings.Builder{},
	}
	l := logrus.New()
	l.SetOutput(f.logs)
	l.SetFormatter(&logrus.JSONFormatter{})
	f.audit = &fakeAudit{}
	full := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.monitorCalls.Add(1)
		w.Write([]byte("full ui"))
	})
	d := Deps{
		Backups: f.backups, Queue: f.queue, Inspector: f.insp, Locks: f.locks,
		Ping:        func(context.Context) error { return f.pingErr },
		TaskOptions: tasks.Options{MaxRetry: 3, Retention: time.Hour, BackupTimeout: time.Hour, RestoreTimeout: time.Hour, DeleteTimeout: time.Hour},
		Log:         logrus.NewEntry(l), Auth: auth,
		Monitoring: full,
		ReserveTTL: time.Hour,
		Audit:      f.audit,
	}
	if change != nil {
		change(&d)
	}
	f.e = New(d)
	return f
}

// do sends a request, with a body as JSON, and returns status and body.
func (f *fixture) do(method, target, token string, body io.Reader) (int, string) {
	return f.doWith(method, target, token, body, nil)
}

// doWith is do with extra headers (which may replace Content-Type).
func (f *fixture) doWith(method, target, token string, body io.Reader, headers map[string]string) (int, string) {
	req := httptest.NewRequest(method, target, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var errSecret = errors.New("dial tcp 10.0.0.5:5432: password=hunter2hunter2 rejected")
