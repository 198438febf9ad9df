package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

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
	// ErrNotEmpty means a restore without clean or replace was aimed at an
	// existing database that already holds tables: pg_restore would stop
	// at the first object that is in the way, every time.
	ErrNotEmpty = errors.New("target database not empty")
	// ErrNoSpace means WORK_DIR lacks the free space a restore or verify
	// needs for what the manifest says it will write there (checked before
	// starting), or a stream decoded to more than that space.
	ErrNoSpace = errors.New("not enough free space in WORK_DIR")
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
	// ChunkSize is the chunk length new manifests record chunk sums for
	// (see ChunkSums); 0 means DefaultChunkSize. Tests set a small one to
	// get many chunks from a small database.
	ChunkSize int64
	// AdoptMinAge is how long an archive of the old manager must have been
	// left unchanged before Adopt takes it (it may still be writing);
	// zero takes it at once. The service's default is one minute
	// (ADOPT_MIN_AGE).
	AdoptMinAge time.Duration
	Log         *logrus.Entry
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
	chunk    int64
	adoptAge time.Duration
	// cache is shared by the views of other servers (see on).
	cache *manifestCache
	log   *logrus.Entry
	// noPlainScan turns plainScanner's refusals off, leaving psql's
	// restricted mode alone against a planted meta-command. Only tests set
	// it (export_test.go), to show that layer holds by itself.
	noPlainScan bool
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
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < minChunkSize || o.ChunkSize > maxChunkSize {
		return nil, fmt.Errorf("engine: chunk size %d is outside %d to %d", o.ChunkSize, minChunkSize, maxChunkSize)
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = logrus.NewEntry(l)
	}
	return &Engine{conn: o.Conn, stores: o.Stores, finder: o.Finder, workDir: o.WorkDir,
		jobs: o.Jobs, compress: o.Compress, codec: o.Codec, counts: o.RowCounts, signer: o.Signer, enc: o.Encryption,
		chunk: o.ChunkSize, adoptAge: o.AdoptMinAge, cache: &manifestCache{}, log: o.Log}, nil
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

// toolsFor finds the client tools matching the server restores go to.
func (e *Engine) toolsFor(ctx context.Context) (pgtool.Tools, error) {
	tools, _, err := e.toolsOf(ctx, e.conn.WithDatabase("postgres"))
	return tools, err
}

// toolsOf finds the client tools for the server conn reaches, and its
// version number.
func (e *Engine) toolsOf(ctx context.Context, conn pgtool.Conn) (pgtool.Tools, int, error) {
	serverNum, err := pgtool.ServerVersion(ctx, conn)
	if err != nil {
		return pgtool.Tools{}, 0, err
	}
	tools, err := e.finder.Find(ctx, serverNum)
	return tools, serverNum, err
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
