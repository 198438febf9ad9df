// Package soak queues many backups at once through the API, lets the
// caller disrupt the service while they run (kill a worker, restart it),
// and then checks that none was lost or made twice and that every archive
// matches its checksum. make bench runs it in full, make test shortened.
package soak

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/store"
)

// Config is one soak run.
type Config struct {
	// APIs are the base URLs of the API instances; requests alternate
	// between them, so each task is queued through one and followed
	// through another.
	APIs  []string
	Token string
	// Databases are backed up in turn.
	Databases []string
	Backups   int
	Prefix    string
	// Disrupt(i) is called once DisruptAt[i] backups have completed.
	DisruptAt []int
	Disrupt   func(i int) error
	// Timeout bounds the whole run; tasks not done by then are lost.
	Timeout time.Duration
	// Store is where the archives are checked (one archive and one
	// manifest per backup, bytes matching the recorded SHA-256).
	Store store.Store
	// Client sends the requests (its timeout and TLS settings); one with a
	// 30 s timeout when nil.
	Client *http.Client
	Logf   func(format string, args ...any)
}

// Result is what a run measured and found.
type Result struct {
	Backups, Completed int
	// Lost are backups not completed in time; Failed ended archived.
	Lost, Failed []string
	// Duplicates are names with more than one archive or manifest, or
	// listed more than once.
	Duplicates []string
	// BadChecksums are archives whose bytes do not match the manifest.
	BadChecksums []string
	// Disagreements are differences between the API instances' answers.
	Disagreements      []string
	Disruptions        int
	Elapsed            time.Duration
	PerMinute          float64
	QueueP50, QueueP99 time.Duration
}

// OK reports whether nothing was lost, duplicated or damaged.
func (r Result) OK() bool {
	return r.Completed == r.Backups && len(r.Lost)+len(r.Failed)+len(r.Duplicates)+len(r.BadChecksums)+len(r.Disagreements) == 0
}

func (r Result) String() string {
	return fmt.Sprintf("%d/%d completed in %.1f s (%.0f backups/min), queue latency p50 %.2f s p99 %.2f s, "+
		"%d disruptions; lost %d, failed %d, duplicates %d, bad checksums %d, API disagreements %d",
		r.Completed, r.Backups, r.Elapsed.Seconds(), r.PerMinute, r.QueueP50.Seconds(), r.QueueP99.Seconds(),
		r.Disruptions, len(r.Lost), len(r.Failed), len(r.Duplicates), len(r.BadChecksums), len(r.Disagreements))
}

type task struct {
	name, id string
	queued   time.Time
	started  time.Time
	state    string
	err      string
}

// Run queues cfg.Backups backups at once and follows them to the end.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	apis := make([]*client.Client, len(cfg.APIs))
	for i, base := range cfg.APIs {
		var err error
		if apis[i], err = client.New(base, cfg.Token, client.WithHTTPClient(cfg.Client)); err != nil {
			return Result{}, fmt.Errorf("soak: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res := Result{Backups: cfg.Backups}
	start := time.Now()
	tasks, err := queueAll(ctx, cfg, apis)
	if err != nil {
		return res, err
	}
	cfg.Logf("soak: %d backups queued in %.1f s", cfg.Backups, time.Since(start).Seconds())
	if err := follow(ctx, cfg, apis, tasks, &res); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	tally(tasks, &res)
	if err := check(context.WithoutCancel(ctx), cfg, apis, tasks, &res); err != nil {
		return res, err
	}
	return res, nil
}

// inflight bounds the requests one sweep has in flight.
const inflight = 16

// queueAll queues every backup at once, spread over the APIs, a few
// requests in flight.
func queueAll(ctx context.Context, cfg Config, apis []*client.Client) ([]*task, error) {
	tasks := make([]*task, cfg.Backups)
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Backups)
	sem := make(chan struct{}, inflight)
	for i := range tasks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("%s-%04d", cfg.Prefix, i)
			out, err := apis[i%len(apis)].CreateBackup(ctx, client.CreateBackupRequest{BackupName: name, Database: cfg.Databases[i%len(cfg.Databases)]})
			if err != nil {
				errc <- err
				return
			}
			tasks[i] = &task{name: name, id: out.TaskID, queued: time.Now()}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("soak: queue: %w", err)
	}
	return tasks, nil
}

// follow polls every open task until none is left (or ctx ends), each
// status read through another API than the one that queued it, and
// disrupts the service at the configured points.
func follow(ctx context.Context, cfg Config, apis []*client.Client, tasks []*task, res *Result) error {
	next := 0
	for {
		sweep(ctx, apis, tasks)
		done, open := 0, 0
		for _, t := range tasks {
			switch t.state {
			case "completed":
				done++
			case "archived":
			default:
				open++
			}
		}
		for next < len(cfg.DisruptAt) && done >= cfg.DisruptAt[next] {
			cfg.Logf("soak: %d done; disruption %d", done, next+1)
			if err := cfg.Disrupt(next); err != nil {
				return fmt.Errorf("soak: disruption %d: %w", next+1, err)
			}
			next++
			res.Disruptions = next
		}
		if open == 0 || ctx.Err() != nil {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// sweep reads the status of every task not yet finished.
func sweep(ctx context.Context, apis []*client.Client, tasks []*task) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, inflight)
	for i, t := range tasks {
		if t.state == "completed" || t.state == "archived" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, err := apis[(i+1)%len(apis)].Task(ctx, t.id)
			if err != nil {
				return // the next sweep asks again
			}
			mu.Lock()
			defer mu.Unlock()
			t.state = st.State
			t.err = strings.Join([]string{st.Error, st.ErrorDetail, st.LastAttemptError}, " | ")
			if !st.StartedAt.IsZero() {
				t.started = st.StartedAt
			}
		}()
	}
	wg.Wait()
}

// tally counts completed, failed and lost tasks, the rate and the queue
// latency percentiles.
func tally(tasks []*task, res *Result) {
	var waits []time.Duration
	for _, t := range tasks {
		switch t.state {
		case "completed":
			res.Completed++
			if !t.started.IsZero() {
				waits = append(waits, max(0, t.started.Sub(t.queued)))
			}
		case "archived":
			res.Failed = append(res.Failed, t.name+" ("+t.err+")")
		default:
			res.Lost = append(res.Lost, t.name)
		}
	}
	res.PerMinute = float64(res.Completed) / res.Elapsed.Minutes()
	slices.Sort(waits)
	res.QueueP50, res.QueueP99 = percentile(waits, 0.50), percentile(waits, 0.99)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// check compares the API instances' listings with each other and with the
// store: every backup listed once, one archive and one manifest each, the
// archive's bytes matching the listed SHA-256.
func check(ctx context.Context, cfg Config, apis []*client.Client, tasks []*task, res *Result) error {
	// entry is what must agree between the instances' listings.
	type entry struct{ Name, SHA256, ArchiveKey string }
	var lists [][]entry
	for _, api := range apis {
		out, err := api.ListBackups(ctx, client.ListBackupsOptions{})
		if err != nil {
			return fmt.Errorf("soak: list through %s: %w", api.BaseURL(), err)
		}
		entries := make([]entry, len(out.Backups))
		for i, b := range out.Backups {
			entries[i] = entry{Name: b.BackupName, SHA256: b.SHA256, ArchiveKey: b.ArchiveKey}
		}
		// Sorted by name: two backups finished in the same instant may
		// come in either order.
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.Name, b.Name) })
		lists = append(lists, entries)
	}
	for i := 1; i < len(lists); i++ {
		if !slices.Equal(lists[i], lists[0]) {
			res.Disagreements = append(res.Disagreements, fmt.Sprintf("%s lists %d backups, %s lists %d",
				cfg.APIs[i], len(lists[i]), cfg.APIs[0], len(lists[0])))
		}
	}
	listed := map[string]entry{}
	for _, e := range lists[0] {
		if _, dup := listed[e.Name]; dup {
			res.Duplicates = append(res.Duplicates, e.Name+" (listed twice)")
		}
		listed[e.Name] = e
	}
	objs, err := cfg.Store.List(ctx, "postgres/"+cfg.Prefix+"-")
	if err != nil {
		return fmt.Errorf("soak: list store: %w", err)
	}
	perName := map[string]int{}
	for _, o := range objs {
		// postgres/<prefix>-NNNN.<extensions>
		name, _, _ := strings.Cut(strings.TrimPrefix(o.Key, "postgres/"), ".")
		perName[name]++
	}
	for _, t := range tasks {
		if t.state != "completed" {
			continue
		}
		e, ok := listed[t.name]
		if !ok {
			res.Lost = append(res.Lost, t.name+" (completed but not listed)")
			continue
		}
		if perName[t.name] != 2 {
			res.Duplicates = append(res.Duplicates, fmt.Sprintf("%s (%d objects, want archive and manifest)", t.name, perName[t.name]))
		}
		sum, err := sha(ctx, cfg.Store, e.ArchiveKey)
		if err != nil || sum != e.SHA256 {
			res.BadChecksums = append(res.BadChecksums, fmt.Sprintf("%s: %s vs %s %v", t.name, sum, e.SHA256, err))
		}
	}
	if len(perName) > len(tasks) {
		res.Duplicates = append(res.Duplicates, fmt.Sprintf("%d names in the store for %d backups", len(perName), len(tasks)))
	}
	return nil
}

func sha(ctx context.Context, s store.Store, key string) (string, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
