package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/jobs/engine"
)

// svcRow is one measured step of the service part.
type svcRow struct {
	section, name string
	wall          time.Duration
	archive       int64 // -1: none
	hwmKiB        int64 // the worker's own peak RSS
	treeKiB       int64 // worker plus children
	diskBytes     int64 // most bytes WORK_DIR held
}

// codecsBench are the codecs compared through the service.
var codecsBench = []string{"zstd", "gzip", "none", "pg_dump"}

// serviceBench measures the service as users run it: the API and a worker,
// a backup or restore requested over HTTP and followed until completed,
// side by side with the floor and the two-step way, alternating, medians
// of three. Then the API under load, and listing 10,000 backups.
func (b *bench) serviceBench(ctx context.Context) ([]svcRow, error) {
	svc, work, err := b.startMeasuredService(ctx)
	if err != nil {
		return nil, err
	}
	defer svc.stop()
	rows, err := b.serviceBackups(ctx, svc, work)
	if err != nil {
		return rows, err
	}
	restores, err := b.serviceRestores(ctx, svc, work)
	rows = append(rows, restores...)
	if err != nil {
		return rows, err
	}
	rep, err := b.repeatedOn(ctx, svc, work)
	return append(rows, rep...), err
}

// svcScenario is one way of doing what a section measures; run takes the
// repetition's number (for unique names).
type svcScenario struct {
	name string
	run  func(rep int) (svcRow, error)
}

// benchReps is how many times each svcScenario runs; rows are the medians.
const benchReps = 3

// alternate runs every svcScenario once per repetition, in turn, so that a
// slow spell of the shared machine hits all of them alike, and returns
// each one's median row; line prints a run.
func alternate(section string, ss []svcScenario, line func(r svcRow, rep int) string) ([]svcRow, error) {
	fmt.Println("\n" + section)
	results := make([][]svcRow, len(ss))
	for rep := 1; rep <= benchReps; rep++ {
		for i, s := range ss {
			r, err := s.run(rep)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			r.section, r.name = section, s.name
			fmt.Println(line(r, rep))
			results[i] = append(results[i], r)
		}
	}
	rows := make([]svcRow, 0, len(ss))
	for _, rs := range results {
		rows = append(rows, median(rs))
	}
	return rows, nil
}

// serviceBackups: the floor, the two-step way and the service with each
// codec.
func (b *bench) serviceBackups(ctx context.Context, svc *service, work string) ([]svcRow, error) {
	section := "backup of the 800 MB database, through the API (medians of 3, alternating)"
	ss := []svcScenario{
		{"floor: pg_dump -Fc -Z0 > /dev/null", func(int) (svcRow, error) {
			steps, err := b.rawDump(section, "0")(ctx, 0)
			if err != nil {
				return svcRow{}, err
			}
			return svcRow{wall: steps[0].u.wall, archive: -1, hwmKiB: steps[0].u.hwmKiB, treeKiB: steps[0].u.treeRSSKiB}, nil
		}},
		{"two-step: pg_dump -Fc -f file, then upload", func(int) (svcRow, error) {
			steps, err := b.oldBackup(section)(ctx, 0)
			if err != nil {
				return svcRow{}, err
			}
			last := steps[len(steps)-1]
			return svcRow{wall: last.u.wall, archive: last.archive, hwmKiB: last.u.hwmKiB, treeKiB: last.u.treeRSSKiB, diskBytes: last.archive}, nil
		}},
	}
	for _, codec := range codecsBench {
		ss = append(ss, svcScenario{"service, COMPRESSION=" + codec, func(rep int) (svcRow, error) {
			return b.serviceBackup(ctx, svc, work, codec, fmt.Sprintf("svc-%s-%d", codec, rep), []string{"minio"})
		}})
	}
	return alternate(section, ss, func(r svcRow, rep int) string {
		return fmt.Sprintf("  %-48s [%d/%d] %6.1f s, worker peak %s, tree %s, temp disk %s%s", r.name, rep, benchReps, r.wall.Seconds(),
			mib(r.hwmKiB<<10), mib(r.treeKiB<<10), mib(r.diskBytes), archiveStr(r.archive))
	})
}

// serviceRestores: raw pg_restore of a local file (the floor), with -j,
// and the service restoring its zstd backup.
func (b *bench) serviceRestores(ctx context.Context, svc *service, work string) ([]svcRow, error) {
	section := "restore into a new database (medians of 3, alternating)"
	local := filepath.Join(b.tmp, "local-Z0.dump")
	dump := exec.CommandContext(ctx, filepath.Join(b.env.PGBin, "pg_dump"), dumpArgs("0", "--file="+local)...)
	dump.Env = b.pgEnv(b.o.db)
	if _, err := measure(ctx, dump, b.env.minioPid); err != nil {
		return nil, fmt.Errorf("local dump for the restore floor: %w", err)
	}
	defer os.Remove(local)
	ss := []svcScenario{
		{"raw pg_restore --single-transaction of a local -Z0 file", func(rep int) (svcRow, error) {
			return b.rawRestore(ctx, local, fmt.Sprintf("%s_raw1_%d", b.o.db, rep), "--single-transaction")
		}},
		{"raw pg_restore -j 2 of a local -Z0 file", func(rep int) (svcRow, error) {
			return b.rawRestore(ctx, local, fmt.Sprintf("%s_rawj_%d", b.o.db, rep), "--jobs=2")
		}},
		{"service restore of the zstd backup", func(rep int) (svcRow, error) {
			return b.serviceRestore(ctx, svc, work, "svc-zstd-1", fmt.Sprintf("%s_svc_%d", b.o.db, rep))
		}},
	}
	rows, err := alternate(section, ss, func(r svcRow, rep int) string {
		return fmt.Sprintf("  %-56s [%d/%d] %6.1f s, worker peak %s, temp disk %s", r.name, rep, benchReps, r.wall.Seconds(), mib(r.hwmKiB<<10), mib(r.diskBytes))
	})
	for i := range rows {
		rows[i].archive = -1
	}
	return rows, err
}

// startMeasuredService starts the API of the service whose workers are
// measured, with a WORK_DIR of its own (whose size is sampled).
func (b *bench) startMeasuredService(ctx context.Context) (*service, string, error) {
	work := filepath.Join(b.tmp, "service-work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, "", err
	}
	svc, err := b.newService("svc", 10, "WORK_DIR="+work, "BACKUP_DIR="+filepath.Join(b.tmp, "service-local"), "LOG_LEVEL=info")
	if err != nil {
		return nil, "", err
	}
	if err := svc.startAPI(ctx); err != nil {
		svc.stop()
		return nil, "", err
	}
	return svc, work, nil
}

// repeatedBackups runs only the repeated-backups part, on a service of its own.
func (b *bench) repeatedBackups(ctx context.Context) ([]svcRow, error) {
	svc, work, err := b.startMeasuredService(ctx)
	if err != nil {
		return nil, err
	}
	defer svc.stop()
	return b.repeatedOn(ctx, svc, work)
}

// repeatedOn measures one worker's peak memory over three zstd backups in
// a row to both stores: it must not grow from one backup to the next.
func (b *bench) repeatedOn(ctx context.Context, svc *service, work string) ([]svcRow, error) {
	var rows []svcRow
	// One worker, repeated backups to both stores: its memory must not grow.
	fmt.Println("\none worker, three zstd backups in a row to MinIO and the local store")
	if err := svc.startWorker(ctx, "COMPRESSION=zstd"); err != nil {
		return rows, err
	}
	w := watchProcess(svc.worker.Pid(), work)
	start := time.Now()
	for i := 1; i <= 3; i++ {
		if _, err := svc.backup(ctx, client.CreateBackupRequest{BackupName: fmt.Sprintf("svc-repeat-%d", i), Stores: []string{"local", "minio"}}); err != nil {
			w.stop()
			return rows, err
		}
	}
	w.stop()
	svc.stopWorker()
	rows = append(rows, svcRow{section: "repeated", name: "3 zstd backups in a row to both stores, one worker", wall: time.Since(start),
		archive: -1, hwmKiB: w.hwmKiB, treeKiB: w.treeKiB, diskBytes: w.disk})
	fmt.Printf("  %.1f s, worker peak %s, tree %s, temp disk %s\n", time.Since(start).Seconds(), mib(w.hwmKiB<<10), mib(w.treeKiB<<10), mib(w.disk))
	return rows, nil
}

func archiveStr(n int64) string {
	if n < 0 {
		return ""
	}
	return ", archive " + mib(n)
}

// median returns the run with the median wall time.
func median(rs []svcRow) svcRow {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b svcRow) int { return int(a.wall - b.wall) })
	return s[len(s)/2]
}

// serviceBackup starts a worker with the codec, then times one backup
// from POST to completed.
func (b *bench) serviceBackup(ctx context.Context, svc *service, work, codec, name string, stores []string) (svcRow, error) {
	if err := svc.startWorker(ctx, "COMPRESSION="+codec); err != nil {
		return svcRow{}, err
	}
	defer svc.stopWorker()
	w := watchProcess(svc.worker.Pid(), work)
	start := time.Now()
	st, err := svc.backup(ctx, client.CreateBackupRequest{BackupName: name, Stores: stores})
	wall := time.Since(start)
	w.stop()
	if err != nil {
		return svcRow{}, err
	}
	var res struct {
		SizeBytes int64 `json:"size_bytes"`
	}
	if err := json.Unmarshal(st.Result, &res); err != nil {
		return svcRow{}, fmt.Errorf("backup %s: result %s: %w", name, st.Result, err)
	}
	return svcRow{wall: wall, archive: res.SizeBytes, hwmKiB: w.hwmKiB, treeKiB: w.treeKiB, diskBytes: w.disk}, nil
}

// serviceRestore times one restore through the API into a new database.
func (b *bench) serviceRestore(ctx context.Context, svc *service, work, backup, db string) (svcRow, error) {
	if err := dropDatabase(ctx, b.env, db); err != nil {
		return svcRow{}, err
	}
	if err := svc.startWorker(ctx, "COMPRESSION=zstd"); err != nil {
		return svcRow{}, err
	}
	defer svc.stopWorker()
	w := watchProcess(svc.worker.Pid(), work)
	start := time.Now()
	_, err := svc.restore(ctx, client.RestoreBackupRequest{BackupName: backup, From: "minio", TargetDatabase: db})
	wall := time.Since(start)
	w.stop()
	if err != nil {
		return svcRow{}, err
	}
	if _, err := b.checkRestored(ctx, db); err != nil {
		return svcRow{}, err
	}
	return svcRow{wall: wall, hwmKiB: w.hwmKiB, treeKiB: w.treeKiB, diskBytes: w.disk}, nil
}

// rawRestore times CREATE DATABASE and pg_restore of a local file.
func (b *bench) rawRestore(ctx context.Context, file, db string, extra ...string) (svcRow, error) {
	if err := dropDatabase(ctx, b.env, db); err != nil {
		return svcRow{}, err
	}
	start := time.Now()
	if err := createDatabase(ctx, b.env, db); err != nil {
		return svcRow{}, err
	}
	args := append([]string{"--no-password", "--exit-on-error", "--format=c", "--dbname=" + db}, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(b.env.PGBin, "pg_restore"), append(args, file)...)
	cmd.Env = b.pgEnv(db)
	u, err := measure(ctx, cmd, b.env.minioPid)
	wall := time.Since(start)
	if err != nil {
		return svcRow{}, err
	}
	if _, err := b.checkRestored(ctx, db); err != nil {
		return svcRow{}, err
	}
	return svcRow{wall: wall, hwmKiB: u.hwmKiB, treeKiB: u.treeRSSKiB}, nil
}

// fillFakeBackups writes n complete backups (tiny archives, real
// manifests) into bucket, 32 at a time.
func (b *bench) fillFakeBackups(ctx context.Context, bucket string, n int) error {
	var wg sync.WaitGroup
	errc := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := engine.MustParseName(fmt.Sprintf("listing-%05d", i))
			archive := []byte("PGDMP listing bench " + name.String())
			sum := sha256.Sum256(archive)
			m := engine.Manifest{Name: name, Database: "listing", Format: engine.FormatCustom,
				ArchiveKey: engine.ArchiveKey(name, engine.FormatCustom, engine.Codec{}), SizeBytes: int64(len(archive)),
				SHA256: hex.EncodeToString(sum[:]), StartedAt: time.Unix(int64(1e9+i), 0).UTC(), FinishedAt: time.Unix(int64(1e9+i+1), 0).UTC(),
				Stores: []string{"minio"}}
			body, _ := json.Marshal(m)
			for key, data := range map[string][]byte{m.ArchiveKey: archive, engine.ManifestKey(name): body} {
				if _, err := b.mc.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// timeList times one listing of the first 100 backups.
func (s *service) timeList(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, err := s.cli.ListBackups(ctx, client.ListBackupsOptions{Limit: 100})
	return time.Since(start), err
}
