// Package engine takes, lists, restores and deletes PostgreSQL backups.
//
// A backup streams pg_dump's output through a SHA-256 hasher into one or
// more stores at once; only after every store holds the complete archive is
// a manifest written beside it. The manifest is what makes a backup exist:
// List shows only backups whose manifest and archive are both present, and
// Restore verifies the archive against the manifest's checksum before it
// touches the target database.
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// Sentinel errors. The HTTP layer and the task handlers map them to status
// codes and retry decisions with errors.Is.
var (
	// ErrInvalid marks a request that can never succeed as given.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound means no complete backup of that name is in the stores.
	ErrNotFound = errors.New("backup not found")
	// ErrExists means a backup of that name is already complete.
	ErrExists = errors.New("backup already exists")
	// ErrChecksumMismatch means the archive differs from its manifest.
	ErrChecksumMismatch = errors.New("archive checksum mismatch")
	// ErrUnreadable means the archive matches its checksum but pg_restore
	// cannot read it (for example, it was corrupt before it was stored).
	ErrUnreadable = errors.New("archive unreadable by pg_restore")
)

// Options configures an Engine.
type Options struct {
	// Conn reaches the server; Conn.Database is the default database.
	Conn pgtool.Conn
	// Stores are the configured backends, in preference order for reads.
	Stores []store.Store
	Finder *pgtool.Finder
	// WorkDir holds directory-format dumps and archives fetched for restore.
	WorkDir string
	// Jobs is pg_dump/pg_restore -j for the directory format.
	Jobs int
	// Codec compresses archives in the stream (with pg_dump -Z0); the zero
	// Codec stores them as pg_dump writes them.
	Codec Codec
	// Compress is pg_dump -Z for formats that compress, used only when
	// Codec.PgDump is set; empty for pg_dump's default.
	Compress string
	// RowCounts records every table's row count in the manifest, taken in
	// the dump's own snapshot. It costs one count(*) per table, run while
	// pg_dump runs.
	RowCounts bool
	// Encryption encrypts new archives to its recipients and decrypts with
	// its identities; nil neither encrypts nor can read encrypted archives.
	Encryption *Encryption
	// Signer signs manifests and checks them before restore and verify;
	// nil or keyless means manifests are neither signed nor checked.
	Signer *Signer
	Log    *logrus.Entry
}

// Engine runs backups and restores. It is safe for concurrent use.
type Engine struct {
	conn     pgtool.Conn
	stores   []store.Store
	finder   *pgtool.Finder
	workDir  string
	jobs     int
	compress string
	codec    Codec
	counts   bool
	signer   *Signer
	enc      *Encryption
	// cache is shared by the views of other servers (see on).
	cache *manifestCache
	log   *logrus.Entry
}

// resumable decides what a backup finds under its name. An earlier attempt
// of the same task (a worker killed, a lease lost) may have finished
// (done: return it) or stopped after some stores had their copy: then the
// task's own partial work is replaced by a new attempt (stores' Puts
// replace). Anything else is another backup of that name: ErrExists.
func resumable(name, taskID string, existing *Manifest, where []string, log *logrus.Entry) (done bool, err error) {
	if taskID == "" || existing.TaskID != taskID {
		return false, fmt.Errorf("backup %s: %w in %v", name, ErrExists, where)
	}
	if containsAll(where, existing.Stores) {
		log.Info("backup already completed by an earlier attempt of this task")
		return true, nil
	}
	log.WithField("found_in", where).Warn("an earlier attempt of this task stopped part way; backing up again")
	return false, nil
}

// on returns a view of the engine that dumps from and restores into
// another PostgreSQL server (a target that names its own); the stores,
// catalog cache and keys stay shared. nil keeps the configured server.
func (e *Engine) on(server *pgtool.Conn) *Engine {
	if server == nil {
		return e
	}
	v := *e
	v.conn = *server
	return &v
}

// New checks the options and returns an Engine.
func New(o Options) (*Engine, error) {
	if len(o.Stores) == 0 {
		return nil, errors.New("engine: no store configured")
	}
	seen := map[string]bool{}
	for _, s := range o.Stores {
		if seen[s.Name()] {
			return nil, fmt.Errorf("engine: store %q configured twice", s.Name())
		}
		seen[s.Name()] = true
	}
	if o.Finder == nil {
		o.Finder = &pgtool.Finder{}
	}
	if o.WorkDir == "" {
		o.WorkDir = os.TempDir()
	}
	if o.Jobs < 1 {
		o.Jobs = 1
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = logrus.NewEntry(l)
	}
	return &Engine{conn: o.Conn, stores: o.Stores, finder: o.Finder, workDir: o.WorkDir,
		jobs: o.Jobs, compress: o.Compress, codec: o.Codec, counts: o.RowCounts, signer: o.Signer, enc: o.Encryption,
		cache: &manifestCache{}, log: o.Log}, nil
}

// StoreNames lists the configured stores in preference order.
func (e *Engine) StoreNames() []string {
	names := make([]string, len(e.stores))
	for i, s := range e.stores {
		names[i] = s.Name()
	}
	return names
}

// HasStore reports whether a store of that name is configured.
func (e *Engine) HasStore(name string) bool { return slices.Contains(e.StoreNames(), name) }

// DefaultDatabase is the database backed up when a request names none.
func (e *Engine) DefaultDatabase() string { return e.conn.Database }

// pick returns the named stores, or all of them for an empty list.
func (e *Engine) pick(names []string) ([]store.Store, error) {
	if len(names) == 0 {
		return e.stores, nil
	}
	var out []store.Store
	for _, n := range names {
		i := slices.IndexFunc(e.stores, func(s store.Store) bool { return s.Name() == n })
		if i < 0 {
			return nil, fmt.Errorf("%w: store %q is not configured (have %v)", ErrInvalid, n, e.StoreNames())
		}
		if !slices.Contains(out, e.stores[i]) {
			out = append(out, e.stores[i])
		}
	}
	return out, nil
}

// BackupRequest asks for one backup.
type BackupRequest struct {
	Name string
	// Server is the PostgreSQL server to dump from; nil means the
	// configured one. Database then defaults to Server's.
	Server *pgtool.Conn
	// Database defaults to the configured one.
	Database string
	Format   Format
	// Stores to write to; every configured store when empty.
	Stores []string
	// IncludeGlobals also stores the server's roles and tablespaces
	// (pg_dumpall --globals-only) beside the archive.
	IncludeGlobals bool
	// Target and Scheduled are recorded in the manifest (see Manifest).
	Target    string
	Scheduled bool
	// TaskID lets a retried task find the backup it already finished.
	TaskID   string
	Progress ProgressFunc
}

// Backup dumps the database into the requested stores and returns the
// manifest. On any failure nothing is left listed: archives already written
// are removed, and the manifest is never written.
func (e *Engine) Backup(ctx context.Context, req BackupRequest) (*Manifest, error) {
	e = e.on(req.Server)
	if err := ValidateName(req.Name); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	format, err := ParseFormat(string(req.Format))
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	db := req.Database
	if db == "" {
		db = e.conn.Database
	}
	if db != AllDatabases && !pgtool.ValidIdentifier(db) {
		return nil, fmt.Errorf("backup %s: %w: database name %q is not a valid identifier", req.Name, ErrInvalid, db)
	}
	targets, err := e.pick(req.Stores)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	log := e.log.WithFields(logrus.Fields{"backup_name": req.Name, "database": db, "format": format})

	// Names are unique across every store, not only the targets, so that a
	// later restore or delete by name is never ambiguous.
	existing, where, err := e.Find(ctx, req.Name, nil)
	switch {
	case err == nil:
		done, err := resumable(req.Name, req.TaskID, existing, where, log)
		if err != nil {
			return nil, err
		}
		if done {
			return existing, nil
		}
	case !errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}

	if db == AllDatabases {
		return e.serverBackup(ctx, req, format, targets, log)
	}
	conn := e.conn.WithDatabase(db)
	tools, serverNum, err := e.toolsOf(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}

	started := time.Now().UTC()
	key := archiveKey(req.Name, format, e.codec, e.enc.encrypts())
	report(req.Progress, Progress{Phase: "dumping"})
	part, err := e.dumpOne(ctx, tools, conn, format, key, targets, req.Progress)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	var globals *Companion
	if req.IncludeGlobals {
		report(req.Progress, Progress{Phase: "globals"})
		if globals, err = e.dumpGlobals(ctx, tools, conn, req.Name, targets); err != nil {
			e.removeQuietly(targets, key)
			return nil, fmt.Errorf("backup %s: %w", req.Name, err)
		}
	}

	m := &Manifest{
		Name: req.Name, Database: db, Format: format, ArchiveKey: key,
		SizeBytes: part.SizeBytes, SHA256: part.SHA256,
		StartedAt: started, FinishedAt: time.Now().UTC(),
		ServerVersion: versionString(serverNum), PgDumpVersion: tools.Version,
		Stores: names(targets), TaskID: req.TaskID, RowCounts: part.RowCounts, Target: req.Target, Scheduled: req.Scheduled,
	}
	m.Codec, m.Globals = e.codec.String(), globals
	if e.enc.encrypts() {
		m.Encrypted, m.Recipients = true, e.enc.fingerprints
	}
	if format.spec().pgCompress {
		m.Compression = e.pgDumpCompress()
	}
	report(req.Progress, Progress{Phase: "publishing", Bytes: m.SizeBytes})
	if err := e.publish(ctx, targets, m); err != nil {
		return nil, fmt.Errorf("backup %s: %w", req.Name, err)
	}
	log.WithFields(logrus.Fields{
		"size_bytes": m.SizeBytes, "sha256": m.SHA256, "stores": m.Stores,
		"duration_ms": m.FinishedAt.Sub(started).Milliseconds(),
	}).Info("backup complete")
	report(req.Progress, Progress{Phase: "done", Bytes: m.SizeBytes})
	return m, nil
}

// DatabaseArchive is one database's archive: the one of a backup, or one
// of a whole-server backup's.
type DatabaseArchive struct {
	Database   string           `json:"database"`
	ArchiveKey string           `json:"archive_key"`
	SizeBytes  int64            `json:"size_bytes"`
	SHA256     string           `json:"sha256"`
	RowCounts  map[string]int64 `json:"row_counts,omitempty"`
}

// dumpOne streams one database's dump, through the codec, the encryption
// and the checksum, into key in every target. With row counts, pg_dump
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
	// The codec compresses between pg_dump and the stores; encryption, when
	// on, comes after compression (ciphertext does not compress); the
	// checksum is taken last, over the bytes the stores hold.
	encoded, stopEncode := e.codec.encodeStream(src)
	encrypted, stopEncrypt := e.enc.encryptStream(encoded)
	digest := newDigestReader(encrypted, "uploading", progress)
	err = putAll(ctx, targets, key, digest)
	// pg_dump first: the stages may be waiting for its output.
	cleanup()
	stopEncrypt()
	stopEncode()
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
		e.removeQuietly(targets, key)
		return nil, err
	}
	return &DatabaseArchive{Database: conn.Database, ArchiveKey: key, SizeBytes: digest.Size(), SHA256: digest.Sum(), RowCounts: counts}, nil
}

type countResult struct {
	counts map[string]int64
	err    error
}

// publish signs (when signing is on) and writes the manifest to every
// target, which is what makes the backup exist. On failure it removes the
// archives already written, so nothing is left half-published.
func (e *Engine) publish(ctx context.Context, targets []store.Store, m *Manifest) error {
	keys := m.objectKeys()
	if e.signer.Enabled() {
		if err := e.signer.sign(m); err != nil {
			e.removeQuietly(targets, keys...)
			return err
		}
	}
	body, err := m.encode()
	if err != nil {
		e.removeQuietly(targets, keys...)
		return err
	}
	for _, s := range targets {
		if err := s.Put(ctx, ManifestKey(m.Name), bytes.NewReader(body), nil); err != nil {
			e.removeQuietly(targets, append(keys, ManifestKey(m.Name))...)
			return fmt.Errorf("write manifest to %s: %w", s.Name(), err)
		}
	}
	return nil
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
	ctx, cancel := context.WithCancel(ctx)
	cmd := tools.Command(ctx, conn, "pg_dump", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("pg_dump: %w", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, nil, fmt.Errorf("pg_dump: %w", err)
	}
	r := &exitReader{r: stdout, wait: cmd.Wait}
	return r, func() {
		// If the stores stopped reading early, kill pg_dump and reap it
		// (the reader may be reaping it at the same moment: reap is once).
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

// putAll writes one stream to several stores at once, so each byte is read
// from pg_dump once. If any store fails, the others' uploads are aborted
// too (their readers see the error), and the caller removes what finished.
func putAll(ctx context.Context, targets []store.Store, key string, r io.Reader) error {
	if len(targets) == 1 {
		return targets[0].Put(ctx, key, r, nil)
	}
	g, gctx := errgroup.WithContext(ctx)
	writers := make([]io.Writer, len(targets))
	pipes := make([]*io.PipeWriter, len(targets))
	for i, s := range targets {
		pr, pw := io.Pipe()
		writers[i], pipes[i] = pw, pw
		g.Go(func() error {
			err := s.Put(gctx, key, pr, nil)
			if err != nil {
				err = fmt.Errorf("%s: %w", s.Name(), err)
			}
			// Unblock the copier whether or not this store read to the end.
			pr.CloseWithError(errOrStopped(err))
			return err
		})
	}
	g.Go(func() error {
		_, err := io.Copy(io.MultiWriter(writers...), r)
		for _, pw := range pipes {
			pw.CloseWithError(err) // nil: the stores see a clean EOF
		}
		return err
	})
	return g.Wait()
}

var errStopped = errors.New("store stopped reading")

func errOrStopped(err error) error {
	if err == nil {
		return errStopped
	}
	return err
}

// removeQuietly deletes keys from stores after a failure. It must work even
// when the failure was ctx being cancelled, hence its own context.
func (e *Engine) removeQuietly(targets []store.Store, keys ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range targets {
		for _, k := range keys {
			if err := s.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
				e.log.WithError(err).WithField("key", k).Warn("could not remove partial backup object")
			}
		}
	}
}

// Find returns the manifest of a complete backup and the stores holding it,
// searching the named stores (all when empty).
func (e *Engine) Find(ctx context.Context, name string, from []string) (*Manifest, []string, error) {
	if err := ValidateName(name); err != nil {
		return nil, nil, err
	}
	stores, err := e.pick(from)
	if err != nil {
		return nil, nil, err
	}
	var found *Manifest
	var where []string
	for _, s := range stores {
		m, err := e.readManifest(ctx, s, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if found == nil {
			found = m
		}
		where = append(where, s.Name())
	}
	if found == nil {
		return nil, nil, fmt.Errorf("%w: %s in %v", ErrNotFound, name, names(stores))
	}
	return found, where, nil
}

// readManifest returns a backup's manifest from one store, provided its
// archive is also there with the recorded size.
func (e *Engine) readManifest(ctx context.Context, s store.Store, name string) (*Manifest, error) {
	m, err := e.fetchManifest(ctx, s, name)
	if err != nil {
		return nil, err
	}
	return e.matchArchive(m, s, func(key string) (int64, error) {
		info, err := s.Stat(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return -1, nil
		}
		if err != nil {
			return 0, fmt.Errorf("stat archive %s in %s: %w", key, s.Name(), err)
		}
		return info.Size, nil
	})
}

// fetchManifest reads and decodes a manifest without looking at the archive.
func (e *Engine) fetchManifest(ctx context.Context, s store.Store, name string) (*Manifest, error) {
	rc, err := s.Get(ctx, ManifestKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s from %s: %w", name, s.Name(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s from %s: %w", name, s.Name(), err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s in %s: %w", name, s.Name(), err)
	}
	if m.Name != name {
		return nil, fmt.Errorf("manifest %s in %s names %q", name, s.Name(), m.Name)
	}
	return m, nil
}

// matchArchive accepts the manifest only if its archive exists (size >= 0)
// with the recorded size: a manifest whose archive was removed or replaced
// by hand does not describe a restorable backup.
func (e *Engine) matchArchive(m *Manifest, s store.Store, sizeOf func(key string) (int64, error)) (*Manifest, error) {
	for key, want := range m.requiredSizes() {
		size, err := sizeOf(key)
		if err != nil {
			return nil, err
		}
		if size != want {
			e.log.WithFields(logrus.Fields{"backup_name": m.Name, "store": s.Name(), "key": key}).Warn("manifest without a matching archive; ignoring it")
			return nil, ErrNotFound
		}
	}
	return m, nil
}

// Entry is one backup in a listing.
type Entry struct {
	Manifest
	// Locations are the stores where archive and manifest both are.
	Locations []string `json:"locations"`
}

// List returns complete backups in the named stores (all when empty), merged
// by name, newest first. An archive without a manifest, or a manifest whose
// archive is missing or has the wrong size, is not a backup and is skipped.
func (e *Engine) List(ctx context.Context, from []string) ([]Entry, error) {
	stores, err := e.pick(from)
	if err != nil {
		return nil, err
	}
	byName := map[string]*Entry{}
	for _, s := range stores {
		found, err := e.listStore(ctx, s)
		if err != nil {
			return nil, err
		}
		for _, m := range found {
			if ent, ok := byName[m.Name]; ok {
				ent.Locations = append(ent.Locations, s.Name())
				continue
			}
			byName[m.Name] = &Entry{Manifest: *m, Locations: []string{s.Name()}}
		}
	}
	out := make([]Entry, 0, len(byName))
	for _, ent := range byName {
		out = append(out, *ent)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].FinishedAt.Equal(out[j].FinishedAt) {
			return out[i].FinishedAt.After(out[j].FinishedAt)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// listStore returns the complete backups in one store. One listing gives
// every archive's size and every manifest's ETag; a manifest is read only
// when the cache (filled from the store's catalog on first use) does not
// hold it with that ETag, and those reads run a few at a time. So a store
// with thousands of backups lists with one listing and, warm, no reads.
func (e *Engine) listStore(ctx context.Context, s store.Store) ([]*Manifest, error) {
	objs, err := s.List(ctx, Prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.Name(), err)
	}
	sc := e.cache.store(s.Name())
	e.loadCatalog(ctx, s, sc)
	sizes := make(map[string]int64, len(objs))
	listed := make(map[string]bool, len(objs))
	type manifestObj struct {
		name string
		obj  store.ObjectInfo
	}
	var manifests []manifestObj
	for _, o := range objs {
		sizes[o.Key] = o.Size
		if name, ok := manifestName(o.Key); ok {
			manifests = append(manifests, manifestObj{name, o})
			listed[o.Key] = true
		}
	}
	found := make([]*Manifest, len(manifests))
	var fetched sync.Mutex
	changed := e.forgetMissing(sc, listed)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, mo := range manifests {
		g.Go(func() error {
			m, read, err := e.cachedOrFetch(gctx, s, sc, mo.obj, mo.name)
			if read {
				fetched.Lock()
				changed = true
				fetched.Unlock()
			}
			if errors.Is(err, ErrNotFound) {
				return nil // deleted while listing
			}
			if err != nil {
				if errors.Is(err, store.ErrUnavailable) || gctx.Err() != nil {
					return err
				}
				e.log.WithError(err).WithField("store", s.Name()).Warn("skipping unreadable manifest")
				return nil
			}
			m, err = e.matchArchive(m, s, func(key string) (int64, error) {
				if size, ok := sizes[key]; ok {
					return size, nil
				}
				return -1, nil
			})
			if err == nil {
				found[i] = m
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list %s: %w", s.Name(), err)
	}
	if changed {
		e.writeCatalog(s, sc)
	}
	return slices.DeleteFunc(found, func(m *Manifest) bool { return m == nil }), nil
}

func manifestName(key string) (string, bool) {
	if len(key) <= len(Prefix)+len(manifestSuffix) || key[:len(Prefix)] != Prefix || key[len(key)-len(manifestSuffix):] != manifestSuffix {
		return "", false
	}
	name := key[len(Prefix) : len(key)-len(manifestSuffix)]
	return name, ValidateName(name) == nil
}

// Delete removes a backup's manifest and archive from the named stores (all
// when empty) and returns where it was deleted. The manifest goes first, so
// a failure half way leaves an unlisted archive, never a listed backup with
// no archive.
func (e *Engine) Delete(ctx context.Context, name string, from []string) ([]string, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	stores, err := e.pick(from)
	if err != nil {
		return nil, fmt.Errorf("delete %s: %w", name, err)
	}
	var deleted []string
	for _, s := range stores {
		m, err := e.readManifest(ctx, s, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("delete %s: %w", name, err)
		}
		if err := s.Delete(ctx, ManifestKey(name)); err != nil {
			return deleted, fmt.Errorf("delete %s from %s: %w", name, s.Name(), err)
		}
		for _, k := range m.objectKeys() {
			if err := s.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
				return deleted, fmt.Errorf("delete %s from %s: %w", k, s.Name(), err)
			}
		}
		deleted = append(deleted, s.Name())
	}
	if len(deleted) == 0 {
		return nil, fmt.Errorf("delete: %w: %s in %v", ErrNotFound, name, names(stores))
	}
	e.log.WithFields(logrus.Fields{"backup_name": name, "stores": deleted}).Info("backup deleted")
	return deleted, nil
}

func names(stores []store.Store) []string {
	out := make([]string, len(stores))
	for i, s := range stores {
		out[i] = s.Name()
	}
	return out
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func versionString(num int) string {
	major := num / 10000
	if major >= 10 {
		return fmt.Sprintf("%d.%d", major, num%10000)
	}
	return fmt.Sprintf("%d.%d.%d", major, num/100%100, num%100)
}

func report(fn ProgressFunc, p Progress) {
	if fn != nil {
		fn(p)
	}
}
