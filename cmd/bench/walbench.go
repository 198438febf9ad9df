package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench/procfs"
	"github.com/autograph/pgbackup/internal/testbench/services"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/wal"
)

// The wal section: a steady INSERT load on a PITR-ready PostgreSQL of its
// own, archived once by pg_receivewal into a local directory (the floor:
// no compression, no network, no object store) and once by the real
// bin/archiver into the bench's MinIO with zstd. Both report their flush
// position to the server only once the WAL is durable (pg_receivewal with
// --synchronous: fsynced; the archiver: stored in MinIO), so the server's
// pg_stat_replication.flush_lsn measures both the same way.
const (
	walLoad      = 20 * time.Second
	walConns     = 2
	walRowBytes  = 1024
	walSample    = 100 * time.Millisecond
	walCatchUp   = 2 * time.Minute
	walTarget    = "bench_wal"
	walFloorSlot = "bench_floor"
)

// walRow is one consumer's result under the load.
type walRow struct {
	name string
	// generated is the WAL the server wrote during the load; flushed is
	// what the consumer had made durable by the load's end.
	generated, flushed int64
	load               time.Duration
	// catchUp is how long after the load the consumer needed to reach
	// the server's position at the load's end.
	catchUp time.Duration
	// lags are the RPO samples: how old the oldest WAL not yet durable
	// at the consumer was, every walSample during the load.
	lags       []time.Duration
	hwmKiB     int64
	cpu        time.Duration
	busy       float64
	insertRows int64
	// backlog is the WAL written while the consumer was stopped; drain is
	// how long it took, once streaming again, to make it durable; its
	// peak RSS meanwhile is drainHWMKiB.
	backlog     int64
	drain       time.Duration
	drainHWMKiB int64
}

func (r walRow) rate(n int64) float64 { return float64(n) / (1 << 20) / r.load.Seconds() }

// drainRate is the most WAL per second the consumer made durable: its
// throughput when it is the bottleneck.
func (r walRow) drainRate() float64 {
	if r.drain <= 0 {
		return 0
	}
	return float64(r.backlog) / (1 << 20) / r.drain.Seconds()
}

// walPart runs the wal section on a private PITR PostgreSQL.
func (b *bench) walPart(ctx context.Context) error {
	opts := services.OptionsFromEnv(os.LookupEnv)
	opts.PostgresOnly, opts.PITR = true, true
	dir := filepath.Join(b.tmp, "pitr-pg")
	pb, err := services.Start(ctx, dir, opts)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if pb, oerr := services.Open(dir, opts); oerr == nil {
			_ = pb.Stop(sctx)
		}
	}()
	if err != nil {
		return fmt.Errorf("wal: start PITR PostgreSQL: %w", err)
	}
	pg, err := pb.Env()
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	su, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable", pg.PGSocket, pg.PGPort))
	if err != nil {
		return fmt.Errorf("wal: connect as postgres: %w", err)
	}
	defer su.Close(context.Background())
	if _, err := su.Exec(ctx, "CREATE TABLE IF NOT EXISTS wal_load (id bigserial PRIMARY KEY, v text)"); err != nil {
		return fmt.Errorf("wal: create table: %w", err)
	}
	fmt.Printf("\nWAL archiving under load: %d connections INSERTing %d-byte rows for %s on a PITR PostgreSQL (fsync on); machine %.0f%% busy before\n",
		walConns, walRowBytes, walLoad, machineBusy(2*time.Second))
	var rows []walRow
	for rep := range b.o.repeat {
		floor, err := b.walFloor(ctx, pg, su)
		if err != nil {
			return err
		}
		fmt.Println(walLine(floor, rep))
		arch, err := b.walArchiver(ctx, pg, su)
		if err != nil {
			return err
		}
		fmt.Println(walLine(arch, rep))
		rows = append(rows, floor, arch)
	}
	printWAL(rows)
	return nil
}

// walConsumer is a program that streams the server's WAL somewhere durable.
type walConsumer struct {
	name string
	// start starts one instance (the n-th of this consumer) and returns
	// its pid and how to stop it.
	start func(n int) (pid int, stop func(), err error)
	// logs says where its output is, for error messages.
	logs func() string
}

// walFloor archives the load with pg_receivewal into a local directory.
func (b *bench) walFloor(ctx context.Context, pg services.Env, su *pgx.Conn) (walRow, error) {
	dir, err := os.MkdirTemp(b.tmp, "receivewal-*")
	if err != nil {
		return walRow{}, err
	}
	defer os.RemoveAll(dir)
	port := 0
	_, _ = fmt.Sscan(pg.PGPort, &port)
	conn := pgtool.Conn{Host: pg.PGHost, Port: port, User: pg.PGUser, Password: pg.PGPassword, SSLMode: "disable"}
	env := conn.WithDatabase("postgres").Env(os.Environ())
	bin := filepath.Join(pg.PGBin, "pg_receivewal")
	create := exec.CommandContext(ctx, bin, "--slot", walFloorSlot, "--create-slot", "--if-not-exists")
	create.Env = env
	if out, err := create.CombinedOutput(); err != nil {
		return walRow{}, fmt.Errorf("wal: pg_receivewal --create-slot: %w: %s", err, out)
	}
	defer func() { _, _ = su.Exec(context.Background(), "SELECT pg_drop_replication_slot($1)", walFloorSlot) }()
	stderr := &pgtool.TailBuffer{Max: 8 << 10}
	c := walConsumer{name: "floor: pg_receivewal --synchronous to a local directory",
		logs: func() string { return strings.TrimSpace(stderr.String()) }}
	c.start = func(int) (int, func(), error) {
		cmd := exec.CommandContext(ctx, bin, "-D", dir, "--slot", walFloorSlot, "--synchronous", "--no-loop")
		cmd.Env, cmd.Stderr = env, stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return 0, nil, fmt.Errorf("wal: start pg_receivewal: %w", err)
		}
		return cmd.Process.Pid, func() { _ = cmd.Process.Signal(syscall.SIGINT); _ = cmd.Wait() }, nil
	}
	return walRun(ctx, su, pg, c)
}

// walArchiver archives the load with the real archiver into MinIO.
func (b *bench) walArchiver(ctx context.Context, pg services.Env, su *pgx.Conn) (walRow, error) {
	pwFile := filepath.Join(b.tmp, "pitr-pw")
	if err := os.WriteFile(pwFile, []byte(pg.PGPassword+"\n"), 0o600); err != nil {
		return walRow{}, err
	}
	target := fmt.Sprintf(`BACKUP_TARGETS=[{"name":%q,"host":%q,"port":%s,"user":%q,"password_file":%q,"sslmode":"disable","pitr":true,"pitr_window":"7d"}]`,
		walTarget, pg.PGHost, pg.PGPort, pg.PGUser, pwFile)
	svc, err := b.newService("wal", 14, target, "LOG_LEVEL=info")
	if err != nil {
		return walRow{}, err
	}
	defer svc.stop()
	c := walConsumer{name: "archiver: bin/archiver, zstd into MinIO", logs: func() string { return "log in " + svc.logs }}
	c.start = func(n int) (int, func(), error) {
		arch, err := svc.progs.Start(fmt.Sprintf("archiver-%d", n), harness.Archiver)
		if err != nil {
			return 0, nil, err
		}
		stop := func() { _ = arch.Stop(syscall.SIGTERM, 15*time.Second) }
		// The drain's instance is timed from when it streams: no wait here.
		if n > 1 {
			return arch.Pid(), stop, nil
		}
		if err := arch.WaitLog(ctx, "lease taken", 60*time.Second); err != nil {
			stop()
			return 0, nil, fmt.Errorf("wal: archiver: %w", err)
		}
		return arch.Pid(), stop, nil
	}
	return walRun(ctx, su, pg, c)
}

// walRun measures a consumer twice: live, streaming while the load runs;
// then draining a backlog: stopped, the load run again with only the
// slot keeping the WAL, then started and timed until it has it all.
func walRun(ctx context.Context, su *pgx.Conn, pg services.Env, c walConsumer) (walRow, error) {
	pid, stop, err := c.start(1)
	if err != nil {
		return walRow{name: c.name}, fmt.Errorf("%w (%s)", err, c.logs())
	}
	r, err := walMeasure(ctx, su, pg, pid)
	stop()
	r.name = c.name
	if err != nil {
		return r, fmt.Errorf("%w (%s)", err, c.logs())
	}
	// The old walsender must be gone, or the drain's clock would start
	// on its row in pg_stat_replication.
	if err := harness.Poll(ctx, 30*time.Second, 20*time.Millisecond, func() (bool, error) {
		n, err := streaming(ctx, su)
		return err == nil && n == 0, nil
	}); err != nil {
		return r, fmt.Errorf("wal: %s still streaming after its stop: %w", c.name, err)
	}
	start, err := serverLSN(ctx, su)
	if err != nil {
		return r, err
	}
	stopLoad := make(chan struct{})
	timer := time.AfterFunc(walLoad, func() { close(stopLoad) })
	defer timer.Stop()
	if err := runLoad(ctx, pg, stopLoad, new(atomic.Int64)); err != nil {
		return r, err
	}
	end, err := serverLSN(ctx, su)
	if err != nil {
		return r, err
	}
	pid, stop, err = c.start(2)
	if err != nil {
		return r, fmt.Errorf("%w (%s)", err, c.logs())
	}
	defer stop()
	// Timed from the moment it streams, so that the archiver's start
	// (Redis lease, target checks) is not counted.
	if err := harness.Poll(ctx, 30*time.Second, 5*time.Millisecond, func() (bool, error) {
		n, err := streaming(ctx, su)
		return err == nil && n > 0, nil
	}); err != nil {
		return r, fmt.Errorf("wal: %s not streaming after restart: %w (%s)", c.name, err, c.logs())
	}
	began := time.Now()
	if err := waitFlushed(ctx, su, end, walCatchUp); err != nil {
		return r, fmt.Errorf("wal: %s did not drain the backlog: %w (%s)", c.name, err, c.logs())
	}
	r.drain, r.backlog = time.Since(began), int64(end-start)
	_, hwm := procfs.Memory(pid)
	r.drainHWMKiB = hwm
	return r, nil
}

// walMeasure waits until a consumer streams, runs the load while sampling
// the server's flush LSN against the consumer's, then waits until the
// consumer caught up with the load's end.
func walMeasure(ctx context.Context, su *pgx.Conn, pg services.Env, pid int) (walRow, error) {
	var r walRow
	start, err := serverLSN(ctx, su)
	if err != nil {
		return r, err
	}
	if err := waitFlushed(ctx, su, start, 30*time.Second); err != nil {
		return r, fmt.Errorf("wal: consumer not streaming: %w", err)
	}
	busy0, total0 := procfs.MachineTicks()
	cpu0 := procfs.CPUTime(pid)
	stop := make(chan struct{})
	var inserted atomic.Int64
	var wg sync.WaitGroup
	var loadErr error
	wg.Go(func() { loadErr = runLoad(ctx, pg, stop, &inserted) })
	began := time.Now()
	type point struct {
		at  time.Time
		lsn wal.LSN
	}
	var history []point
	t := time.NewTicker(walSample)
	for time.Since(began) < walLoad {
		<-t.C
		now := time.Now()
		srv, err1 := serverLSN(ctx, su)
		fl, err2 := flushLSN(ctx, su)
		if err := errors.Join(err1, err2); err != nil {
			t.Stop()
			close(stop)
			wg.Wait()
			return r, err
		}
		history = append(history, point{now, srv})
		// The oldest WAL not yet durable was written when the server first
		// passed the consumer's flush position.
		lag := time.Duration(0)
		if i := slices.IndexFunc(history, func(p point) bool { return p.lsn > fl }); i >= 0 {
			lag = now.Sub(history[i].at)
		}
		r.lags = append(r.lags, lag)
		_, hwm := procfs.Memory(pid)
		r.hwmKiB = max(r.hwmKiB, hwm)
	}
	t.Stop()
	close(stop)
	wg.Wait()
	r.load = time.Since(began)
	if loadErr != nil {
		return r, loadErr
	}
	end, err := serverLSN(ctx, su)
	if err != nil {
		return r, err
	}
	fl, err := flushLSN(ctx, su)
	if err != nil {
		return r, err
	}
	r.generated, r.flushed, r.insertRows = int64(end-start), int64(min(fl, end)-start), inserted.Load()
	loadEnd := time.Now()
	if err := waitFlushed(ctx, su, end, walCatchUp); err != nil {
		return r, fmt.Errorf("wal: consumer did not catch up: %w", err)
	}
	r.catchUp = time.Since(loadEnd)
	busy1, total1 := procfs.MachineTicks()
	r.busy = usage{busy: busy1 - busy0, total: total1 - total0}.machineCPU()
	r.cpu = procfs.CPUTime(pid) - cpu0
	_, hwm := procfs.Memory(pid)
	r.hwmKiB = max(r.hwmKiB, hwm)
	return r, nil
}

// runLoad runs walConns inserting connections until stop is closed.
func runLoad(ctx context.Context, pg services.Env, stop <-chan struct{}, n *atomic.Int64) error {
	var wg sync.WaitGroup
	errs := make([]error, walConns)
	for i := range walConns {
		wg.Go(func() { errs[i] = walInsert(ctx, pg, stop, n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// walInsert inserts walRowBytes-byte rows one statement at a time (each a
// commit, so WAL is flushed steadily) until stop is closed.
func walInsert(ctx context.Context, pg services.Env, stop <-chan struct{}, n *atomic.Int64) error {
	c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable", pg.PGSocket, pg.PGPort))
	if err != nil {
		return fmt.Errorf("wal: load connection: %w", err)
	}
	defer c.Close(context.Background())
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		// md5 of random() repeated: data that compresses about as well as
		// text rows do, not as well as a constant string would.
		if _, err := c.Exec(ctx, "INSERT INTO wal_load (v) SELECT string_agg(md5(random()::text), '') FROM generate_series(1, $1)", walRowBytes/32); err != nil {
			return fmt.Errorf("wal: insert: %w", err)
		}
		n.Add(1)
	}
}

func serverLSN(ctx context.Context, su *pgx.Conn) (wal.LSN, error) {
	var s string
	if err := su.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&s); err != nil {
		return 0, fmt.Errorf("wal: server LSN: %w", err)
	}
	return wal.ParseLSN(s)
}

// flushLSN is the furthest position a streaming consumer reported
// durable; 0 when none streams.
func flushLSN(ctx context.Context, su *pgx.Conn) (wal.LSN, error) {
	var s string
	err := su.QueryRow(ctx, "SELECT coalesce(max(flush_lsn), '0/0')::text FROM pg_stat_replication").Scan(&s)
	if err != nil {
		return 0, fmt.Errorf("wal: consumer flush LSN: %w", err)
	}
	return wal.ParseLSN(s)
}

// streaming is how many walsenders serve a consumer.
func streaming(ctx context.Context, su *pgx.Conn) (int, error) {
	var n int
	err := su.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication").Scan(&n)
	return n, err
}

func waitFlushed(ctx context.Context, su *pgx.Conn, lsn wal.LSN, timeout time.Duration) error {
	return harness.Poll(ctx, timeout, 20*time.Millisecond, func() (bool, error) {
		fl, err := flushLSN(ctx, su)
		return err == nil && fl >= lsn, nil
	})
}

func walLine(r walRow, rep int) string {
	p50, mx := lagStats(r.lags)
	return fmt.Sprintf("  [%d] %s: live: server %.2f MiB/s, durable %.2f MiB/s, catch-up %.1f s, RPO p50 %.1f s max %.1f s, peak RSS %s, machine %.0f%% busy; backlog %s drained in %.1f s (%.2f MiB/s), peak RSS %s",
		rep+1, r.name, r.rate(r.generated), r.rate(r.flushed), r.catchUp.Seconds(), p50.Seconds(), mx.Seconds(), mib(r.hwmKiB<<10), r.busy,
		mib(r.backlog), r.drain.Seconds(), r.drainRate(), mib(r.drainHWMKiB<<10))
}

func lagStats(lags []time.Duration) (p50, mx time.Duration) {
	if len(lags) == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(lags))
	return s[len(s)/2], s[len(s)-1]
}

// printWAL prints the table and the archiver's rates against the floor's
// (the runs with the most WAL of each, other load only slows them).
func printWAL(rows []walRow) {
	best := map[string]walRow{}
	var names []string
	for _, r := range rows {
		if _, ok := best[r.name]; !ok {
			names = append(names, r.name)
		}
		if r.drainRate() > best[r.name].drainRate() {
			best[r.name] = r
		}
	}
	fmt.Printf("\n%-55s %9s %9s %8s %7s %7s %9s %6s %5s %10s %9s\n", "WAL archiving (live: under load; drain: a backlog)",
		"live srv", "live dur", "catch-up", "RPO p50", "RPO max", "peak RSS", "CPU", "busy", "drain", "drain RSS")
	for _, n := range names {
		r := best[n]
		p50, mx := lagStats(r.lags)
		fmt.Printf("%-55s %5.2f MiB/s %5.2f MiB/s %6.1f s %5.1f s %5.1f s %9s %4.1f s %4.0f%% %6.2f MiB/s %9s\n", n, r.rate(r.generated), r.rate(r.flushed),
			r.catchUp.Seconds(), p50.Seconds(), mx.Seconds(), mib(r.hwmKiB<<10), r.cpu.Seconds(), r.busy, r.drainRate(), mib(r.drainHWMKiB<<10))
	}
	if len(names) == 2 {
		f, a := best[names[0]], best[names[1]]
		fmt.Printf("archiver / floor: drain rate %.2f; WAL the server wrote per second under load %.2f (the load slows with what runs beside it)\n",
			a.drainRate()/f.drainRate(), a.rate(a.generated)/f.rate(f.generated))
	}
}
