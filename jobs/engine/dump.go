package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// dumpDatabase is the dump stage of a one-database backup: its archive,
// then (when asked) the server's globals beside it.
func (e *Engine) dumpDatabase(ctx context.Context, job *backupJob) (*Manifest, error) {
	conn := e.conn.WithDatabase(job.db)
	tools, serverNum, err := e.toolsOf(ctx, conn)
	if err != nil {
		return nil, err
	}
	m := e.newManifest(job, tools, serverNum)
	m.ArchiveKey = archiveKey(job.Name, job.Format, e.codec, e.enc.encrypts())
	report(job.Progress, Progress{Phase: "dumping"})
	part, err := e.dumpOne(ctx, tools, conn, job.Format, m.ArchiveKey, job.targets, job.Progress)
	if err != nil {
		return nil, err
	}
	m.SizeBytes, m.SHA256, m.ChunkSums, m.RowCounts = part.SizeBytes, part.SHA256, part.ChunkSums, part.RowCounts
	if job.IncludeGlobals {
		report(job.Progress, Progress{Phase: "globals"})
		if m.Globals, err = e.dumpGlobals(ctx, tools, conn, job.Name, job.targets); err != nil {
			e.removeQuietly(job.targets, m.ArchiveKey)
			return nil, err
		}
	}
	m.FinishedAt = time.Now().UTC()
	report(job.Progress, Progress{Phase: "publishing", Bytes: m.SizeBytes})
	return m, nil
}

// dumpOne streams one database's dump through the encode and put stages
// into key in every target. With row counts, pg_dump
// dumps the snapshot the counts are taken in, while the counting runs. On
// failure nothing is left under key.
func (e *Engine) dumpOne(ctx context.Context, tools pgtool.Tools, conn pgtool.Conn, format Format, key string, targets []store.Store, progress ProgressFunc) (*DatabaseArchive, error) {
	var snap *snapshot
	var counted chan countResult
	var err error
	if e.counts {
		if snap, err = openSnapshot(ctx, conn); err != nil {
			return nil, err
		}
		defer snap.close(ctx)
	}
	src, cleanup, err := e.dump(ctx, tools, conn, format, snap)
	if err != nil {
		return nil, err
	}
	if snap != nil {
		counted = make(chan countResult, 1)
		go func() {
			counts, err := snap.countRows(ctx)
			counted <- countResult{counts, err}
		}()
	}
	digest, err := e.putStream(ctx, targets, key, src, cleanup, "uploading", progress)
	var counts map[string]int64
	if counted != nil {
		// Always collected, so the snapshot's connection is free before
		// close, even when the upload failed.
		r := <-counted
		if err == nil {
			counts, err = r.counts, r.err
		}
	}
	if err != nil {
		if digest != nil {
			// Stored, but the counting failed: putStream removed
			// nothing, so this does.
			e.removeQuietly(targets, key)
		}
		return nil, err
	}
	return &DatabaseArchive{Database: conn.Database, ArchiveKey: key, SizeBytes: digest.Size(), SHA256: digest.Sum(), ChunkSums: digest.Sums(), RowCounts: counts}, nil
}

type countResult struct {
	counts map[string]int64
	err    error
}

// dump starts pg_dump and returns its archive as a stream. cleanup stops
// pg_dump if it is still running and removes temporary files; it must be
// called once the stream is no longer read. With snap, pg_dump dumps that
// snapshot.
func (e *Engine) dump(ctx context.Context, tools pgtool.Tools, conn pgtool.Conn, f Format, snap *snapshot) (io.Reader, func(), error) {
	spec := f.spec()
	args := []string{"--no-password", "--format=" + spec.flag}
	if snap != nil {
		args = append(args, "--snapshot="+snap.id)
	}
	if z := e.pgDumpCompress(); z != "" && spec.pgCompress {
		args = append(args, "--compress="+z)
	}
	if spec.toDir {
		return e.dumpDirectory(ctx, tools, conn, args)
	}
	return startTool(ctx, tools, conn, "pg_dump", args...)
}

// startTool starts one of the client tools and returns its standard
// output as a stream whose EOF means the tool exited cleanly (see
// exitReader). stop must be called once the stream is no longer read: if
// the stores stopped reading early, it kills the tool and reaps it (the
// reader may be reaping it at the same moment: reap is once).
func startTool(ctx context.Context, tools pgtool.Tools, conn pgtool.Conn, name string, args ...string) (src io.Reader, stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	cmd := tools.Command(ctx, conn, name, args...)
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	r := &exitReader{r: stdout, wait: cmd.Wait}
	return r, func() {
		cancel()
		_ = r.reap()
	}, nil
}

// dumpDirectory runs pg_dump -Fd -j into a temporary directory, then streams
// it as a tar archive. The directory format is the only one that dumps
// tables in parallel, and it cannot write to a pipe.
func (e *Engine) dumpDirectory(ctx context.Context, tools pgtool.Tools, conn pgtool.Conn, args []string) (io.Reader, func(), error) {
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-dump-*")
	if err != nil {
		return nil, nil, fmt.Errorf("pg_dump: work dir: %w", err)
	}
	dir := filepath.Join(tmp, "dump")
	args = append(args, "--jobs="+strconv.Itoa(e.jobs), "--file="+dir)
	if err := tools.Command(ctx, conn, "pg_dump", args...).Run(); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, nil, err
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeTar(pw, dir))
	}()
	return pr, func() {
		_ = pr.Close()
		<-done
		_ = os.RemoveAll(tmp)
	}, nil
}

// pgDumpCompress is pg_dump's -Z: PG_DUMP_COMPRESS when pg_dump does the
// compressing, 0 when the engine's codec does (or nobody does), so that
// the codec never works on already compressed data.
func (e *Engine) pgDumpCompress() string {
	if e.codec.PgDump {
		return e.compress
	}
	return "0"
}
