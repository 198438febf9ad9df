package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/soak"
	"github.com/autograph/pgbackup/store"
)

// soakDatabases are the small databases the soak backs up in turn; they
// are made once and reused by later runs.
const soakDatabases = 10

// soakResult is the soak and its baseline, for the report.
type soakResult struct {
	res            soak.Result
	baselinePerMin float64
	baselineN      int
}

// soakBench queues b.o.soakBackups backups of small databases at once
// through two API instances across three workers, SIGKILLs a worker and
// restarts it at a third and at two thirds of the run, and checks that
// nothing was lost, duplicated or damaged. The baseline is what one cron
// script would do: pg_dump the same databases one after another.
func (b *bench) soakBench(ctx context.Context) (soakResult, error) {
	var out soakResult
	var dbs []string
	for i := range soakDatabases {
		db := fmt.Sprintf("bench_soak_%d", i)
		if err := b.ensureSmallDB(ctx, db, 2000*(i+1)); err != nil {
			return out, err
		}
		dbs = append(dbs, db)
	}

	// Baseline: sequential raw pg_dump -Fc of the same databases.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return out, err
	}
	defer null.Close()
	out.baselineN = 50
	began := time.Now()
	for i := range out.baselineN {
		cmd := exec.CommandContext(ctx, filepath.Join(b.env.PGBin, "pg_dump"), dumpArgs("")...)
		cmd.Env = b.pgEnv(dbs[i%len(dbs)])
		cmd.Stdout = null
		if err := cmd.Run(); err != nil {
			return out, fmt.Errorf("soak baseline: pg_dump: %w", err)
		}
	}
	out.baselinePerMin = float64(out.baselineN) / time.Since(began).Minutes()

	svc, err := b.newService("soak", 13, "WORKER_CONCURRENCY=2")
	if err != nil {
		return out, err
	}
	defer svc.stop()
	var apis []string
	for i := range 2 {
		_, url, err := svc.progs.StartAPI(ctx, fmt.Sprintf("api-%d", i), "")
		if err != nil {
			return out, err
		}
		apis = append(apis, url)
	}
	workers := make([]*harness.Proc, 3)
	for i := range workers {
		if workers[i], err = svc.progs.Start(fmt.Sprintf("worker-%d", i), harness.Worker); err != nil {
			return out, err
		}
	}
	st, err := store.NewMinIO(ctx, store.MinIOConfig{Endpoint: b.env.MinIOEndpoint, AccessKey: b.env.MinIOUser,
		SecretKey: b.env.MinIOPassword, Bucket: b.bucket})
	if err != nil {
		return out, err
	}
	n := b.o.soakBackups
	out.res, err = soak.Run(ctx, soak.Config{
		APIs: apis, Token: benchToken, Databases: dbs, Backups: n, Prefix: "soak",
		DisruptAt: []int{n / 3, 2 * n / 3},
		Disrupt: func(i int) error {
			w := workers[i%len(workers)]
			if err := w.Kill(); err != nil {
				return err
			}
			w, err := w.Restart()
			if err != nil {
				return err
			}
			workers[i%len(workers)] = w
			return nil
		},
		Timeout: 30 * time.Minute, Store: st, Client: svc.hc,
		Logf: func(f string, a ...any) { fmt.Printf(f+"\n", a...) },
	})
	return out, err
}

// ensureSmallDB makes db with rows rows unless it has them already.
func (b *bench) ensureSmallDB(ctx context.Context, db string, rows int) error {
	if conn, err := connect(ctx, b.env, db); err == nil {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n)
		conn.Close(ctx)
		if err == nil && n == rows {
			return nil
		}
		if err := dropDatabase(ctx, b.env, db); err != nil {
			return err
		}
	}
	admin, err := connect(ctx, b.env, "postgres")
	if err != nil {
		return err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+db)
	admin.Close(ctx)
	if err != nil {
		return fmt.Errorf("create %s: %w", db, err)
	}
	conn, err := connect(ctx, b.env, db)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, `+strconv.Itoa(rows)+`) g`)
	if err != nil {
		return fmt.Errorf("fill %s: %w", db, err)
	}
	return nil
}

func printSoak(s soakResult) {
	r := s.res
	fmt.Printf("\nSoak: %d backups of %d small databases queued at once through 2 API instances, 3 workers x 2, one worker SIGKILLed and restarted twice\n",
		r.Backups, soakDatabases)
	fmt.Printf("  %-52s %s\n", "result", r)
	fmt.Printf("  %-52s %.0f backups/min (%d dumps)\n", "baseline: one pg_dump -Fc > /dev/null after another", s.baselinePerMin, s.baselineN)
	fmt.Printf("  %-52s %.0f backups/min, %.2fx the baseline\n", "service, with the kills", r.PerMinute, r.PerMinute/s.baselinePerMin)
	fmt.Printf("  %-52s p50 %.2f s, p99 %.2f s\n", "queue latency (202 to the start of the last attempt)", r.QueueP50.Seconds(), r.QueueP99.Seconds())
}
