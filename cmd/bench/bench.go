package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/autograph/pgbackup/configs"
)

// step is one measured row of the report.
type step struct {
	section string
	name    string
	u       usage
	// archive is the archive's size in bytes; -1 when the step has none.
	archive int64
	// sum marks a row that adds up the rows before it (the old way's total).
	sum bool
	// engineBackup marks the steps whose peak RSS is checked.
	engineBackup bool
	// note is shown after the step's progress line.
	note string
}

// compression levels compared: pg_dump's default (gzip level 6 for -Fc),
// fastest gzip, and none.
var levels = []struct{ label, z string }{
	{"default -Z", ""},
	{"-Z1", "1"},
	{"-Z0", "0"},
}

// bench holds what every step needs.
type bench struct {
	o       options
	env     benchEnv
	bucket  string
	tmp     string
	self    string
	mc      *minio.Client
	partMiB int
	threads int
	// steps are the reported runs (the fastest of each scenario).
	steps []step
	// engineRSS holds every engine backup run, for the memory check.
	engineRSS []step
}

func benchmark(ctx context.Context, o options, env benchEnv) (err error) {
	began := time.Now()
	b := &bench{o: o, env: env}
	if b.self, err = os.Executable(); err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	b.partMiB, b.threads = configs.Defaults().MinIOPartSizeMB, configs.Defaults().MinIOUploadThreads
	if v, err := strconv.Atoi(os.Getenv("MINIO_PART_SIZE_MB")); err == nil {
		b.partMiB = v
	}
	if v, err := strconv.Atoi(os.Getenv("MINIO_UPLOAD_THREADS")); err == nil {
		b.threads = v
	}

	size, err := ensureDatabase(ctx, env, o.db, o.rows)
	if err != nil {
		return err
	}
	// Read the table once so that the first timed dump does not pay for a
	// cold page cache alone; this also checks the source's row count.
	n, err := countRows(ctx, env, o.db)
	if err != nil {
		return err
	}
	if n != o.rows {
		return fmt.Errorf("database %s has %d rows in bench_data, its marker says %d", o.db, n, o.rows)
	}
	fmt.Printf("database %s: %d rows, pg_database_size %s\n", o.db, n, sizeStr(size))
	// Other work on the machine skews every figure: say so up front.
	if busy := machineBusy(2 * time.Second); busy > 10 {
		fmt.Printf("WARNING: the machine is already %.0f%% busy before the benchmark starts; figures will be noisy\n", busy)
	} else {
		fmt.Printf("machine %.0f%% busy before the start\n", busy)
	}
	fmt.Printf("pgbackup: %s; MinIO part size %d MiB x %d upload threads; pg_dump from %s; %d CPUs\n",
		o.pgbackup, b.partMiB, b.threads, env.PGBin, runtime.NumCPU())

	if b.tmp, err = os.MkdirTemp(o.workDir, "pgbackup-bench-*"); err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(b.tmp)
	if b.mc, err = newMinIO(env); err != nil {
		return err
	}
	b.bucket = fmt.Sprintf("pgbackup-bench-%d-%d", time.Now().Unix(), os.Getpid())
	if err := b.mc.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("create bucket %s: %w", b.bucket, err)
	}
	if o.keep {
		fmt.Printf("bucket %s (kept: -keep)\n", b.bucket)
	} else {
		defer func() {
			if rerr := removeBucket(b.mc, b.bucket); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}()
	}

	if o.cli {
		if err := b.backups(ctx); err != nil {
			b.print()
			return err
		}
		if err := b.restores(ctx); err != nil {
			b.print()
			return err
		}
		b.print()
		if err := b.summary(); err != nil {
			return err
		}
	}
	if o.service {
		if err := b.servicePart(ctx); err != nil {
			return err
		}
	}
	fmt.Printf("\nbenchmark took %.0f s\n", time.Since(began).Seconds())
	return nil
}

// servicePart runs the service through its API: backups and restores side
// by side with the floor and the two-step way, the API under load, and a
// 10,000-backup listing; then prints the tables and checks the targets.
func (b *bench) servicePart(ctx context.Context) error {
	var rows []svcRow
	var err error
	switch b.o.only {
	case "":
		rows, err = b.serviceBench(ctx)
	case "repeated":
		rows, err = b.repeatedBackups(ctx)
		printServiceRows(rows)
		return err
	case "soak":
		return b.soakPart(ctx)
	case "wal":
		return b.walPart(ctx)
	}
	printServiceRows(rows)
	if err != nil {
		return err
	}
	svc, err := b.newService("load", 12)
	if err != nil {
		return err
	}
	if err := svc.startAPI(ctx); err != nil {
		return err
	}
	load, err := b.apiLoad(ctx, svc)
	svc.stop()
	if err != nil {
		return err
	}
	if b.o.only == "load" {
		return nil
	}
	listing, err := b.listing10k(ctx)
	if err != nil {
		return err
	}
	soakErr := b.soakPart(ctx)
	return errors.Join(serviceSummary(rows, load, listing, b.o.maxRSSMiB), soakErr)
}

// soakPart runs the soak and fails when it lost, duplicated or damaged a
// backup.
func (b *bench) soakPart(ctx context.Context) error {
	s, err := b.soakBench(ctx)
	if err != nil {
		return err
	}
	printSoak(s)
	if !s.res.OK() {
		return fmt.Errorf("soak: %s; lost %v, failed %v, duplicates %v, bad checksums %v, disagreements %v",
			s.res, s.res.Lost, s.res.Failed, s.res.Duplicates, s.res.BadChecksums, s.res.Disagreements)
	}
	return nil
}

// show prints one measured step as it completes.
func (b *bench) show(s step, rep int) {
	archive := ""
	if s.archive >= 0 {
		archive = ", " + sizeStr(s.archive)
	}
	name := s.name
	if b.o.repeat > 1 {
		name = fmt.Sprintf("%s [%d/%d]", name, rep, b.o.repeat)
	}
	fmt.Printf("  %-51s %6.1f s, maxrss %s, own peak %s, CPU %.1f s, machine busy %.0f%%%s\n", name, s.u.wall.Seconds(),
		mib(s.u.maxRSSKiB<<10), mib(s.u.hwmKiB<<10), s.u.cpu.Seconds(), s.u.machineCPU(), archive)
	if s.note != "" {
		fmt.Printf("    %s\n", s.note)
	}
}

// scenario measures one way of doing something once and returns its steps;
// the last step is the one whose wall time counts.
type scenario func(ctx context.Context, rep int) ([]step, error)

// measureBest runs a scenario -repeat times and keeps the fastest run for
// the report: other load on the machine only ever adds time. Every run's
// engine backup RSS is kept for the memory check, not only the fastest.
func (b *bench) measureBest(ctx context.Context, run scenario) error {
	var best []step
	for rep := 1; rep <= b.o.repeat; rep++ {
		steps, err := run(ctx, rep)
		for _, s := range steps {
			b.show(s, rep)
			if s.engineBackup {
				b.engineRSS = append(b.engineRSS, s)
			}
		}
		if err != nil {
			if best == nil {
				best = steps
			}
			b.steps = append(b.steps, best...)
			return err
		}
		if best == nil || steps[len(steps)-1].u.wall < best[len(best)-1].u.wall {
			best = steps
		}
	}
	b.steps = append(b.steps, best...)
	return nil
}

func engineBackupName(z string, rep int) string {
	name := "bench-z" + z
	if z == "" {
		name = "bench-zdefault"
	}
	return fmt.Sprintf("%s-%d", name, rep)
}

func (b *bench) backups(ctx context.Context) error {
	for _, lvl := range levels {
		section := "backup, " + lvl.label
		fmt.Println(section)
		if err := b.measureBest(ctx, b.rawDump(section, lvl.z)); err != nil {
			return err
		}
		if lvl.z == "" {
			if err := b.measureBest(ctx, b.oldBackup(section)); err != nil {
				return err
			}
		}
		if err := b.measureBest(ctx, b.engineBackup(section, lvl.z, true)); err != nil {
			return err
		}
		if lvl.z == "" {
			// The cost of row counts: the same backup without them.
			if err := b.measureBest(ctx, b.engineBackup(section, lvl.z, false)); err != nil {
				return err
			}
		}
	}
	return nil
}

func dumpArgs(z string, extra ...string) []string {
	args := []string{"--format=custom", "--no-password"}
	if z != "" {
		args = append(args, "--compress="+z)
	}
	return append(args, extra...)
}

// rawDump is the floor: pg_dump writing straight to /dev/null.
func (b *bench) rawDump(section, z string) scenario {
	return func(ctx context.Context, _ int) ([]step, error) {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		defer null.Close()
		// pg_dump writes to /dev/null itself (no pipe): the floor for any
		// backup. Its archive size is the engine's at the same level.
		cmd := exec.CommandContext(ctx, filepath.Join(b.env.PGBin, "pg_dump"), dumpArgs(z)...)
		cmd.Env = b.pgEnv(b.o.db)
		cmd.Stdout = null
		u, err := measure(ctx, cmd, b.env.minioPid)
		if err != nil {
			return nil, fmt.Errorf("raw pg_dump: %w", err)
		}
		return []step{{section: section, name: "raw pg_dump -Fc > /dev/null", u: u, archive: -1}}, nil
	}
}

// oldKey is where the old way's upload goes; the old way's restore reads it.
const oldKey = "old/bench.dump"

// oldBackup is what the service did before: pg_dump to a file, then upload
// the finished file.
func (b *bench) oldBackup(section string) scenario {
	return func(ctx context.Context, _ int) ([]step, error) {
		file := filepath.Join(b.tmp, "old.dump")
		defer os.Remove(file)
		cmd := exec.CommandContext(ctx, filepath.Join(b.env.PGBin, "pg_dump"), dumpArgs("", "--file="+file)...)
		cmd.Env = b.pgEnv(b.o.db)
		dump, err := measure(ctx, cmd, b.env.minioPid)
		if err != nil {
			return nil, fmt.Errorf("old way pg_dump: %w", err)
		}
		st, err := os.Stat(file)
		if err != nil {
			return nil, fmt.Errorf("old way: %w", err)
		}
		steps := []step{{section: section, name: "old way: pg_dump -Fc -f file", u: dump, archive: st.Size()}}
		up, err := measure(ctx, exec.CommandContext(ctx, b.self, "put", "-bucket", b.bucket, "-key", oldKey, "-file", file), b.env.minioPid)
		if err != nil {
			return steps, fmt.Errorf("old way upload: %w", err)
		}
		return append(steps,
			step{section: section, name: "old way: upload file (FPutObject)", u: up, archive: -1},
			step{section: section, name: "old way total", u: combine(dump, up), archive: st.Size(), sum: true},
		), nil
	}
}

// combine is two sequential steps: times add up, memory is the larger.
func combine(a, c usage) usage {
	return usage{
		wall: a.wall + c.wall, cpu: a.cpu + c.cpu, busy: a.busy + c.busy, total: a.total + c.total,
		minioCPU:  max(a.minioCPU, 0) + max(c.minioCPU, 0),
		maxRSSKiB: max(a.maxRSSKiB, c.maxRSSKiB), hwmKiB: max(a.hwmKiB, c.hwmKiB),
		treeRSSKiB: max(a.treeRSSKiB, c.treeRSSKiB),
	}
}

// engineEnv is pgbackup's configuration for the bench: everything it reads
// is set here, nothing inherited but MINIO_PART_SIZE_MB and
// MINIO_UPLOAD_THREADS (to try other settings).
func (b *bench) engineEnv(compress string) []string {
	keep := map[string]bool{"MINIO_PART_SIZE_MB": true, "MINIO_UPLOAD_THREADS": true}
	out := withoutVars(os.Environ(), func(k string) bool {
		if keep[k] {
			return false
		}
		for _, p := range []string{"PG", "POSTGRES_", "MINIO_", "BACKUP_", "RESTORE_", "REDIS_"} {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
		return k == "WORK_DIR" || k == "LOG_LEVEL" || k == "CONFIG_FILE"
	})
	out = append(out,
		"POSTGRES_HOST="+b.env.pg.Host,
		"POSTGRES_PORT="+strconv.Itoa(b.env.pg.Port),
		"POSTGRES_DB="+b.o.db,
		"POSTGRES_USER="+b.env.pg.User,
		"POSTGRES_PASSWORD="+b.env.pg.Password,
		"POSTGRES_SSLMODE=disable",
		"PG_BIN_DIR="+b.env.PGBin,
		"BACKUP_DIR="+filepath.Join(b.tmp, "local-store"),
		"WORK_DIR="+b.tmp,
		"MINIO_ENDPOINT="+b.env.MinIOEndpoint,
		"MINIO_ROOT_USER="+b.env.MinIOUser,
		"MINIO_ROOT_PASSWORD="+b.env.MinIOPassword,
		"MINIO_BUCKET="+b.bucket,
	)
	if compress != "" {
		out = append(out, "PG_DUMP_COMPRESS="+compress)
	}
	return out
}

// engineBackup runs `pgbackup backup` into MinIO: pg_dump streamed through
// the checksum into a multipart upload, nothing on disk. With counts, the
// manifest records every table's row count, taken in the dump's snapshot
// while pg_dump runs (BACKUP_ROW_COUNTS, the default).
func (b *bench) engineBackup(section, z string, counts bool) scenario {
	return func(ctx context.Context, rep int) ([]step, error) {
		var stdout bytes.Buffer
		name, stepName := engineBackupName(z, rep), engineBackupStep
		env := b.engineEnv(z)
		if !counts {
			name, stepName = name+"-nocounts", engineBackupStep+" (BACKUP_ROW_COUNTS=false)"
			env = append(env, "BACKUP_ROW_COUNTS=false")
		}
		cmd := exec.CommandContext(ctx, b.o.pgbackup, "backup", "-name", name,
			"-format", "custom", "-stores", "minio")
		cmd.Env = env
		cmd.Stdout = &stdout
		u, err := measure(ctx, cmd, b.env.minioPid)
		if err != nil {
			return nil, fmt.Errorf("engine backup: %w", err)
		}
		var m struct {
			SizeBytes int64 `json:"size_bytes"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &m); err != nil || m.SizeBytes <= 0 {
			return nil, fmt.Errorf("engine backup: unexpected output %q: %v", stdout.String(), err)
		}
		return []step{{section: section, name: stepName, u: u, archive: m.SizeBytes, engineBackup: true}}, nil
	}
}

const (
	engineBackupStep  = "engine: pgbackup backup -stores minio"
	engineRestoreStep = "engine: pgbackup restore -from minio"
	restoreSection    = "restore of the default -Z archive into a new database"
)

func (b *bench) restores(ctx context.Context) error {
	fmt.Println(restoreSection)
	if err := b.measureBest(ctx, b.oldRestore(restoreSection)); err != nil {
		return err
	}
	if err := b.measureBest(ctx, b.engineRestore(restoreSection)); err != nil {
		return err
	}
	return b.measureBest(ctx, b.engineRestoreUnchunked(restoreSection))
}

// checkRestored counts the restored rows, then drops the database (unless
// -keep). It returns what it verified, for the report.
func (b *bench) checkRestored(ctx context.Context, db string) (string, error) {
	n, err := countRows(ctx, b.env, db)
	if err != nil {
		return "", err
	}
	if n != b.o.rows {
		return "", fmt.Errorf("restored database %s has %d rows, want %d", db, n, b.o.rows)
	}
	if !b.o.keep {
		if err := dropDatabase(ctx, b.env, db); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("verified: %s holds %d rows", db, n), nil
}

// oldRestore downloads the old way's archive to a file, then runs
// pg_restore on it with the same options the engine uses.
func (b *bench) oldRestore(section string) scenario {
	return func(ctx context.Context, _ int) ([]step, error) {
		db := b.o.db + "_restore_old"
		if err := dropDatabase(ctx, b.env, db); err != nil {
			return nil, err
		}
		file := filepath.Join(b.tmp, "old-restore.dump")
		defer os.Remove(file)
		down, err := measure(ctx, exec.CommandContext(ctx, b.self, "get", "-bucket", b.bucket, "-key", oldKey, "-file", file), b.env.minioPid)
		if err != nil {
			return nil, fmt.Errorf("old way download: %w", err)
		}
		steps := []step{{section: section, name: "old way: download file (FGetObject)", u: down, archive: -1}}
		start := time.Now()
		if err := createDatabase(ctx, b.env, db); err != nil {
			return steps, err
		}
		created := time.Since(start)
		cmd := exec.CommandContext(ctx, filepath.Join(b.env.PGBin, "pg_restore"),
			"--no-password", "--exit-on-error", "--single-transaction", "--format=c", "--dbname="+db, file)
		cmd.Env = b.pgEnv(db)
		restore, err := measure(ctx, cmd, b.env.minioPid)
		if err != nil {
			return steps, fmt.Errorf("old way pg_restore: %w", err)
		}
		restore.wall += created
		note, err := b.checkRestored(ctx, db)
		return append(steps,
			step{section: section, name: "old way: CREATE DATABASE; pg_restore file", u: restore, archive: -1},
			step{section: section, name: "old way total", u: combine(down, restore), archive: -1, sum: true, note: note},
		), err
	}
}

// engineRestore runs `pgbackup restore`: download with checksum to a work
// file, then pg_restore in one transaction into a database it creates.
func (b *bench) engineRestore(section string) scenario {
	return func(ctx context.Context, _ int) ([]step, error) {
		db := b.o.db + "_restore_engine"
		if err := dropDatabase(ctx, b.env, db); err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, b.o.pgbackup, "restore", "-name", engineBackupName("", 1),
			"-from", "minio", "-target", db)
		cmd.Env = b.engineEnv("")
		u, err := measure(ctx, cmd, b.env.minioPid)
		if err != nil {
			return nil, fmt.Errorf("engine restore: %w", err)
		}
		note, err := b.checkRestored(ctx, db)
		return []step{{section: section, name: engineRestoreStep, u: u, archive: -1, note: note}}, err
	}
}

func sizeStr(n int64) string {
	return fmt.Sprintf("%d bytes (%.1f MiB, %.0f MB)", n, float64(n)/(1<<20), float64(n)/1e6)
}

func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }
