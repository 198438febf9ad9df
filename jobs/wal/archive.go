package wal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/store"
)

// Errors of the archive, tested with errors.Is.
var (
	// ErrConflict means an object already stored under a key holds other
	// WAL than the one being put: objects are never rewritten, and WAL at
	// a position of a timeline never changes, so two writers disagree.
	ErrConflict = errors.New("wal object already stored with other content")
	// ErrCorrupt means an object's header, signature or checksum does not
	// verify: it is not trusted, and the chain has a gap there.
	ErrCorrupt = errors.New("wal object does not verify")
	// ErrNotArchived means the archive holds no such segment (restore_command
	// answers "not found" only for this error).
	ErrNotArchived = errors.New("wal segment not archived")
	// ErrGap means a segment's chunks leave a hole before its end.
	ErrGap = errors.New("wal archive has a gap")
)

// Options builds a StoreArchive.
type Options struct {
	// Target names the archive: its objects live under wal/<Target>/.
	Target string
	// Stores receive every object; reads try them in order.
	Stores []store.Store
	// Codec compresses payloads (engine.DefaultCodec: zstd).
	Codec engine.Codec
	// Encryption encrypts payloads when it has recipients and decrypts
	// them with its identities; nil: plain.
	Encryption *engine.Encryption
	// Signer signs headers and verifies them; nil or without keys: unsigned.
	Signer *engine.Signer
	// SegmentSize is the server's wal_segment_size. 0: learnt, from the
	// signed header of the archive's objects (each records the size it
	// was written with), or from the writer (SetSegmentSize); an archive
	// that holds nothing yet and is told nothing writes 16 MiB segments.
	SegmentSize uint64
	Log         *logrus.Entry
}

// StoreArchive is an Archive kept in object stores, in the layout of
// layout.go, each object carrying its signed header (envelope.go).
type StoreArchive struct {
	target string
	stores []store.Store
	codec  engine.Codec
	enc    *engine.Encryption
	signer *engine.Signer
	// size is the archive's wal_segment_size; 0 until it is known (see
	// segsize.go).
	size atomic.Uint64
	log  *logrus.Entry

	// headers caches verified headers by store, key and ETag: objects are
	// never rewritten, so a listing checks only what is new since.
	mu      sync.Mutex
	headers map[string]cachedHeader
}

type cachedHeader struct {
	etag string
	h    header
}

var _ Archive = (*StoreArchive)(nil)

// New checks o and returns the archive.
func New(o Options) (*StoreArchive, error) {
	switch {
	case o.Target == "" || strings.ContainsAny(o.Target, "/\\") || store.ValidateKey(Root(o.Target)+"x") != nil:
		return nil, fmt.Errorf("wal archive: invalid target name %q", o.Target)
	case len(o.Stores) == 0:
		return nil, fmt.Errorf("wal archive %s: no store", o.Target)
	case o.SegmentSize != 0 && !validSegmentSize(o.SegmentSize):
		return nil, fmt.Errorf("wal archive %s: %w: %d", o.Target, ErrSegmentSize, o.SegmentSize)
	case o.Codec.PgDump:
		return nil, fmt.Errorf("wal archive %s: compression pg_dump does not apply to WAL", o.Target)
	case o.Log == nil:
		return nil, fmt.Errorf("wal archive %s: no logger", o.Target)
	}
	a := &StoreArchive{
		target: o.Target, stores: o.Stores, codec: o.Codec, enc: o.Encryption, signer: o.Signer,
		log: o.Log.WithField("wal_target", o.Target), headers: map[string]cachedHeader{},
	}
	a.size.Store(o.SegmentSize)
	return a, nil
}

// PutPartial implements Archive.
func (a *StoreArchive) PutPartial(ctx context.Context, tli uint32, start LSN, data []byte) error {
	if err := a.writerSize(ctx); err != nil {
		return err
	}
	end := start + LSN(len(data))
	if len(data) == 0 || uint64(start)/a.seg() != uint64(end-1)/a.seg() {
		return fmt.Errorf("wal put partial %d %s+%d: want 1 or more bytes within one segment", tli, start, len(data))
	}
	segno := uint64(start) / a.seg()
	pk := parsedKey{base: chunkBase(a.target, tli, segno, a.seg(), start, end), kind: kindPartial, tli: tli, segno: segno, start: start, end: end}
	return a.put(ctx, pk, header{}, data)
}

// PutSegment implements Archive.
func (a *StoreArchive) PutSegment(ctx context.Context, tli uint32, segno uint64, data []byte) error {
	if err := a.writerSize(ctx); err != nil {
		return err
	}
	if uint64(len(data)) != a.seg() {
		return fmt.Errorf("wal put segment %s: %d bytes, want the segment size %d", SegmentName(tli, segno, a.seg()), len(data), a.seg())
	}
	start := LSN(segno * a.seg())
	pk := parsedKey{base: segmentBase(a.target, tli, segno, a.seg()), kind: kindSegment, tli: tli, segno: segno, start: start, end: start + LSN(a.seg())}
	return a.put(ctx, pk, header{}, data)
}

// PutHistory implements Archive. Its parent timeline and switch point go
// into the signed header, so the chain is walked without decrypting it.
func (a *StoreArchive) PutHistory(ctx context.Context, tli uint32, content []byte) error {
	if err := a.writerSize(ctx); err != nil {
		return err
	}
	parent, switchAt, err := ParseHistory(content)
	if err != nil {
		return fmt.Errorf("wal put history %s: %w", HistoryFileName(tli), err)
	}
	if parent >= tli || uint64(len(content)) > a.seg() {
		return fmt.Errorf("wal put history %s: parent timeline %d is not before it, or the file is too large", HistoryFileName(tli), parent)
	}
	pk := parsedKey{base: historyBase(a.target, tli), kind: kindHistory, tli: tli}
	return a.put(ctx, pk, header{ParentTimeline: parent, SwitchLSN: lsnHex(switchAt)}, content)
}

// ParseHistory reads a timeline history file's last entry: the parent
// timeline and where the new timeline branched off it.
func ParseHistory(content []byte) (parent uint32, switchAt LSN, err error) {
	found := false
	for _, line := range strings.Split(string(content), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		p, err := strconv.ParseUint(fields[0], 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("history line %q: %w", line, err)
		}
		if switchAt, err = ParseLSN(fields[1]); err != nil {
			return 0, 0, fmt.Errorf("history line %q: %w", line, err)
		}
		parent, found = uint32(p), true
	}
	if !found {
		return 0, 0, fmt.Errorf("history file has no entry")
	}
	return parent, switchAt, nil
}

func (a *StoreArchive) key(base string) string {
	k := base + a.codec.Extension()
	if a.enc.Encrypts() {
		k += ".age"
	}
	return k
}

// put stores raw under pk in every store that does not hold it yet. An
// object already there under pk (whatever its extensions) with the same
// WAL is success; with other WAL it is ErrConflict. It returns once every
// store holds it: only then may the archiver confirm the position.
func (a *StoreArchive) put(ctx context.Context, pk parsedKey, h header, raw []byte) error {
	h.Key, h.Kind, h.Timeline = pk.base, pk.kind, pk.tli
	if pk.kind != kindHistory {
		h.Start, h.End = lsnHex(pk.start), lsnHex(pk.end)
	}
	obj, err := a.encodeObject(h, raw)
	if err != nil {
		return err
	}
	// Every store at once: in sync mode the server waits for the slowest.
	g, gctx := errgroup.WithContext(ctx)
	for _, st := range a.stores {
		g.Go(func() error {
			same, err := a.existing(gctx, st, pk, raw)
			if err != nil || same {
				return err
			}
			if err := st.Put(gctx, a.key(pk.base), bytes.NewReader(obj), nil); err != nil {
				return fmt.Errorf("wal put %s to %s: %w", pk.base, st.Name(), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// existing reports whether st already holds pk with raw as its WAL.
func (a *StoreArchive) existing(ctx context.Context, st store.Store, pk parsedKey, raw []byte) (bool, error) {
	objs, err := st.List(ctx, pk.base)
	if err != nil {
		return false, fmt.Errorf("wal put %s: list %s: %w", pk.base, st.Name(), err)
	}
	for _, o := range objs {
		if other, ok := parseKey(a.target, o.Key, a.seg()); !ok || other.base != pk.base {
			continue
		}
		h, err := a.header(ctx, st, o, pk)
		if err != nil {
			return false, fmt.Errorf("wal put %s: %w: %w", pk.base, ErrConflict, err)
		}
		if h.RawSize != int64(len(raw)) || h.RawSHA256 != sha256Hex(raw) {
			return false, fmt.Errorf("wal put %s: %w (%s in %s)", pk.base, ErrConflict, o.Key, st.Name())
		}
		return true, nil
	}
	return false, nil
}

// header reads and verifies the header of object o (key pk), from the
// cache when this version was verified before.
func (a *StoreArchive) header(ctx context.Context, st store.Store, o store.ObjectInfo, pk parsedKey) (header, error) {
	cacheKey := st.Name() + "\x00" + o.Key
	a.mu.Lock()
	c, ok := a.headers[cacheKey]
	a.mu.Unlock()
	if ok && o.ETag != "" && c.etag == o.ETag {
		return c.h, nil
	}
	rc, err := st.Get(ctx, o.Key)
	if err != nil {
		return header{}, fmt.Errorf("wal read %s from %s: %w", o.Key, st.Name(), err)
	}
	defer rc.Close()
	h, err := a.readHeader(bufio.NewReaderSize(io.LimitReader(rc, maxHeader), maxHeader), pk)
	if err != nil {
		return header{}, err
	}
	if o.ETag != "" {
		a.mu.Lock()
		a.headers[cacheKey] = cachedHeader{etag: o.ETag, h: h}
		a.mu.Unlock()
	}
	return h, nil
}

// readObject reads object o (key pk) whole and returns its verified WAL.
func (a *StoreArchive) readObject(ctx context.Context, st store.Store, key string, pk parsedKey) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("wal read %s from %s: %w", key, st.Name(), err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, maxHeader)
	h, err := a.readHeader(br, pk)
	if err != nil {
		return nil, err
	}
	payload, err := io.ReadAll(io.LimitReader(br, h.PayloadSize+1))
	if err != nil {
		return nil, fmt.Errorf("wal read %s from %s: %w", key, st.Name(), err)
	}
	return a.decodePayload(h, payload)
}
