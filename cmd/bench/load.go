package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/autograph/pgbackup/handlers/client"
)

// loadResult is one route under load.
type loadResult struct {
	name          string
	requests      int
	errors        int
	rps           float64
	p50, p99, max time.Duration
}

// loadCall is one request of a load test, made through the typed client (on
// the service's shared *http.Client, so every call reuses a pooled
// connection as a raw request would): it passes opts on to the client.
type loadCall func(ctx context.Context, opts ...client.CallOption) error

// loadTest runs clients goroutines that make calls for d and measures
// each answer's latency (the request and decoding its answer); want is
// the expected status.
//
// With rate > 0 the clients together send at most rate requests a second
// (an open-loop load at a fixed rate): latency is then the service time
// at that throughput, not the queueing that a closed loop of 50 clients
// adds by itself (by Little's law, p50 = clients / throughput there).
func loadTest(ctx context.Context, name string, clients int, d time.Duration, want int, rate int, op loadCall) loadResult {
	var tokens chan struct{}
	if rate > 0 {
		tokens = make(chan struct{}, clients)
		go func() {
			// A tick every millisecond releases rate/1000 requests (with
			// the remainder carried), so the offered load is smooth.
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			due, sent := 0.0, 0
			start := time.Now()
			for range t.C {
				if time.Since(start) > d {
					close(tokens)
					return
				}
				due = float64(rate) * time.Since(start).Seconds()
				for ; float64(sent) < due; sent++ {
					select {
					case tokens <- struct{}{}:
					default: // every client busy: the server is behind; drop, do not queue
					}
				}
			}
		}()
	}
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				if tokens != nil {
					if _, ok := <-tokens; !ok {
						break
					}
				}
				var answer client.Response
				t := time.Now()
				err := op(context.Background(), client.WithResponse(&answer))
				el := time.Since(t)
				if err != nil || answer.StatusCode != want {
					bad++
					continue
				}
				mine = append(mine, el)
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	r := loadResult{name: name, requests: len(lat), errors: errs, rps: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return r
}

func (r loadResult) String() string {
	return fmt.Sprintf("%-44s %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  max %6.1f ms  (%d ok, %d errors)", r.name, r.rps,
		ms(r.p50), ms(r.p99), ms(r.max), r.requests, r.errors)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// apiLoad measures create (distinct names), task status and list at 50
// concurrent clients with no worker running, so only the API, Redis and
// the stores' existence checks are measured.
func (b *bench) apiLoad(ctx context.Context, svc *service) ([]loadResult, error) {
	fmt.Println("\nthe API under load: 50 clients, 5 s per route, no worker running; as fast as they can, then at 2,000 req/s")
	probe, err := svc.cli.CreateBackup(ctx, client.CreateBackupRequest{BackupName: "load-status-probe"})
	if err != nil {
		return nil, fmt.Errorf("create for the status probe: %w", err)
	}
	status := func(ctx context.Context, opts ...client.CallOption) error {
		_, err := svc.cli.Task(ctx, probe.TaskID, opts...)
		return err
	}
	list := func(ctx context.Context, opts ...client.CallOption) error {
		_, err := svc.cli.ListBackups(ctx, client.ListBackupsOptions{}, opts...)
		return err
	}
	run := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	// One sequence for every create run, so that no two runs ask for the
	// same name (which would be a 409, not what is measured).
	var names atomic.Int64
	create := func(ctx context.Context, opts ...client.CallOption) error {
		_, err := svc.cli.CreateBackup(ctx, client.CreateBackupRequest{BackupName: fmt.Sprintf("load-%s-%d", run, names.Add(1)),
			Stores: []string{"minio"}}, opts...)
		return err
	}
	var results []loadResult
	for _, c := range []struct {
		name string
		want int
		op   loadCall
	}{
		{"GET /api/admin/tasks/{id}", http.StatusOK, status},
		{"POST /api/admin/backup/create (new names)", http.StatusAccepted, create},
		{"GET /api/admin/backup/list", http.StatusOK, list},
	} {
		for _, rate := range []int{0, 2000} {
			name := c.name + ", closed loop"
			if rate > 0 {
				name = fmt.Sprintf("%s, at %d req/s", c.name, rate)
			}
			r := loadTest(ctx, name, 50, 5*time.Second, c.want, rate, c.op)
			fmt.Println("  " + r.String())
			results = append(results, r)
		}
	}
	return results, nil
}

// listingResult is the 10,000-backup listing.
type listingResult struct {
	backups                                int
	fill, cold, catalogCold, warm          time.Duration
	exists50, exists99, absent50, absent99 time.Duration
}

// listing10k fills a bucket with 10,000 backups and times, on an API of
// its own: the first list (no catalog yet: every manifest read), the
// first list of a fresh API once the catalog exists, a warm list, and
// create's existence check for a name that exists (409) and one that
// does not (202).
func (b *bench) listing10k(ctx context.Context) (listingResult, error) {
	const n = 10000
	r := listingResult{backups: n}
	bucket := b.bucket + "-10k"
	fmt.Printf("\nlisting %d backups in MinIO\n", n)
	if err := b.mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		return r, err
	}
	if !b.o.keep {
		defer func() { _ = removeBucket(b.mc, bucket) }()
	}
	start := time.Now()
	if err := b.fillFakeBackups(ctx, bucket, n); err != nil {
		return r, err
	}
	r.fill = time.Since(start)
	fmt.Printf("  filled in %.1f s\n", r.fill.Seconds())
	svc, err := b.newService("listing", 11, "MINIO_BUCKET="+bucket, "BACKUP_DIR="+b.tmp+"/listing-local")
	if err != nil {
		return r, err
	}
	defer svc.stop()
	if err := svc.startAPI(ctx); err != nil {
		return r, err
	}
	if r.cold, err = svc.timeList(ctx); err != nil {
		return r, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := b.mc.StatObject(ctx, bucket, "postgres/.catalog.json", minio.StatObjectOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("no catalog written for %d backups", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = svc.api.Stop(syscall.SIGTERM, 0)
	if err := svc.startAPI(ctx); err != nil {
		return r, err
	}
	if r.catalogCold, err = svc.timeList(ctx); err != nil {
		return r, err
	}
	if r.warm, err = svc.timeList(ctx); err != nil {
		return r, err
	}
	var exists, absent []time.Duration
	for i := range 100 {
		t := time.Now()
		_, err := svc.cli.CreateBackup(ctx, client.CreateBackupRequest{BackupName: fmt.Sprintf("listing-%05d", i*97)})
		if client.StatusOf(err) != http.StatusConflict {
			return r, fmt.Errorf("create of an existing name: %v, want 409", err)
		}
		exists = append(exists, time.Since(t))
		t = time.Now()
		var answer client.Response
		_, err = svc.cli.CreateBackup(ctx, client.CreateBackupRequest{BackupName: fmt.Sprintf("absent-%05d", i)}, client.WithResponse(&answer))
		if err != nil || answer.StatusCode != http.StatusAccepted {
			return r, fmt.Errorf("create of a new name: %d, %v", answer.StatusCode, err)
		}
		absent = append(absent, time.Since(t))
	}
	slices.Sort(exists)
	slices.Sort(absent)
	r.exists50, r.exists99, r.absent50, r.absent99 = exists[50], exists[99], absent[50], absent[99]
	fmt.Printf("  list, first (no catalog): %.0f ms; fresh API with the catalog: %.0f ms; warm: %.0f ms\n",
		ms(r.cold), ms(r.catalogCold), ms(r.warm))
	fmt.Printf("  create's existence check: existing name (409) p50 %.1f ms p99 %.1f ms; new name (202) p50 %.1f ms p99 %.1f ms\n",
		ms(r.exists50), ms(r.exists99), ms(r.absent50), ms(r.absent99))
	return r, nil
}
