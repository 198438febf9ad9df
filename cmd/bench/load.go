package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
)

// loadResult is one route under load.
type loadResult struct {
	name          string
	requests      int
	errors        int
	rps           float64
	p50, p99, max time.Duration
}

// loadTest runs clients goroutines that send requests for d and measures
// each answer's latency. makeReq gets a sequence number (for distinct
// names); want is the expected status.
//
// With rate > 0 the clients together send at most rate requests a second
// (an open-loop load at a fixed rate): latency is then the service time
// at that throughput, not the queueing that a closed loop of 50 clients
// adds by itself (by Little's law, p50 = clients / throughput there).
func loadTest(ctx context.Context, client *http.Client, name string, clients int, d time.Duration, want int, rate int,
	makeReq func(ctx context.Context, n int64) (*http.Request, error)) loadResult {
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
	var seq atomic.Int64
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
				req, err := makeReq(context.Background(), seq.Add(1))
				if err != nil {
					bad++
					continue
				}
				t := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					var sink bytes.Buffer
					_, _ = sink.ReadFrom(resp.Body)
					resp.Body.Close()
				}
				el := time.Since(t)
				if err != nil || resp.StatusCode != want {
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
	_, out, err := svc.call(ctx, http.MethodPost, "/api/admin/backup/create", map[string]any{"backup_name": "load-status-probe"})
	if err != nil {
		return nil, err
	}
	taskID, _ := out["task_id"].(string)
	if taskID == "" {
		return nil, fmt.Errorf("create for the status probe: %v", out)
	}
	auth := "Bearer " + benchToken
	get := func(path string) func(context.Context, int64) (*http.Request, error) {
		return func(ctx context.Context, _ int64) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, svc.url+path, nil)
			if err == nil {
				req.Header.Set("Authorization", auth)
			}
			return req, err
		}
	}
	run := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	// One sequence for every create run, so that no two runs ask for the
	// same name (which would be a 409, not what is measured).
	var names atomic.Int64
	create := func(ctx context.Context, _ int64) (*http.Request, error) {
		body := fmt.Sprintf(`{"backup_name":"load-%s-%d","stores":["minio"]}`, run, names.Add(1))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, svc.url+"/api/admin/backup/create", bytes.NewReader([]byte(body)))
		if err == nil {
			req.Header.Set("Authorization", auth)
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}
	var results []loadResult
	for _, c := range []struct {
		name string
		want int
		req  func(context.Context, int64) (*http.Request, error)
	}{
		{"GET /api/admin/tasks/{id}", http.StatusOK, get("/api/admin/tasks/" + taskID)},
		{"POST /api/admin/backup/create (new names)", http.StatusAccepted, create},
		{"GET /api/admin/backup/list", http.StatusOK, get("/api/admin/backup/list")},
	} {
		for _, rate := range []int{0, 2000} {
			name := c.name + ", closed loop"
			if rate > 0 {
				name = fmt.Sprintf("%s, at %d req/s", c.name, rate)
			}
			r := loadTest(ctx, svc.client, name, 50, 5*time.Second, c.want, rate, c.req)
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
	if r.cold, err = svc.timeGet(ctx, "/api/admin/backup/list?limit=100", http.StatusOK); err != nil {
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
	if r.catalogCold, err = svc.timeGet(ctx, "/api/admin/backup/list?limit=100", http.StatusOK); err != nil {
		return r, err
	}
	if r.warm, err = svc.timeGet(ctx, "/api/admin/backup/list?limit=100", http.StatusOK); err != nil {
		return r, err
	}
	var exists, absent []time.Duration
	for i := range 100 {
		t := time.Now()
		code, _, err := svc.call(ctx, http.MethodPost, "/api/admin/backup/create", map[string]any{"backup_name": fmt.Sprintf("listing-%05d", i*97)})
		if err != nil || code != http.StatusConflict {
			return r, fmt.Errorf("create of an existing name: %d, %v", code, err)
		}
		exists = append(exists, time.Since(t))
		t = time.Now()
		code, _, err = svc.call(ctx, http.MethodPost, "/api/admin/backup/create", map[string]any{"backup_name": fmt.Sprintf("absent-%05d", i)})
		if err != nil || code != http.StatusAccepted {
			return r, fmt.Errorf("create of a new name: %d, %v", code, err)
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
