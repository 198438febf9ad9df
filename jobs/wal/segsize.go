package wal

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"

	"github.com/autograph/pgbackup/store"
)

// The segment size of an archive is its server's wal_segment_size (initdb
// --wal-segsize: a power of two from 1 MiB to 1 GiB, 16 MiB by default).
// It decides the segments' names, so every reader must use the writer's:
// each object records it in its signed header, and an archive opened
// without one (Options.SegmentSize 0) learns it from the first object
// whose header verifies, or from its writer (SetSegmentSize, which the
// archiver calls with the server's SHOW wal_segment_size before writing).

// ErrSegmentSize means a segment size that is not a power of two from
// 1 MiB to 1 GiB, or one that differs from the size of the WAL the
// archive already holds (another server's WAL under the same name).
var ErrSegmentSize = errors.New("wal segment size")

// learnTries bounds the objects read to learn the size from an archive
// whose first objects do not verify: the reader then uses the default and
// reports those objects as gaps.
const learnTries = 32

func validSegmentSize(n uint64) bool {
	return bits.OnesCount64(n) == 1 && n >= 1<<20 && n <= 1<<30
}

// seg is the archive's segment size, DefaultSegmentSize while unknown
// (the archive then holds nothing to name).
func (a *StoreArchive) seg() uint64 {
	if n := a.size.Load(); n != 0 {
		return n
	}
	return DefaultSegmentSize
}

// SegmentSize is the archive's wal_segment_size: the one it was opened
// or told with, or learnt by End, Scan, Verify, Open or a write;
// DefaultSegmentSize while the archive is empty and told nothing.
func (a *StoreArchive) SegmentSize() uint64 { return a.seg() }

// SetSegmentSize is the writer's: the server's wal_segment_size. The
// archive takes it unless it holds WAL of another size (ErrSegmentSize:
// another server's WAL, or the server initialised again, under the same
// name; give the target a new name).
func (a *StoreArchive) SetSegmentSize(ctx context.Context, n uint64) error {
	if !validSegmentSize(n) {
		return fmt.Errorf("wal archive %s: %w %d: not a power of two from 1 MiB to 1 GiB", a.target, ErrSegmentSize, n)
	}
	if err := a.learn(ctx); err != nil {
		return err
	}
	if a.size.CompareAndSwap(0, n) {
		return nil
	}
	if have := a.size.Load(); have != n {
		return fmt.Errorf("wal archive %s: %w: the server's is %d bytes, the archive holds WAL of %d-byte segments (another server's?): archive this server under another target name",
			a.target, ErrSegmentSize, n, have)
	}
	return nil
}

// writerSize makes sure a write names its objects with the archive's
// size: learnt, or the default for an archive that holds nothing and was
// told nothing.
func (a *StoreArchive) writerSize(ctx context.Context) error {
	if err := a.learn(ctx); err != nil {
		return err
	}
	a.size.CompareAndSwap(0, DefaultSegmentSize)
	return nil
}

// learn sets the size from the archive's objects while it is unknown.
// An empty archive leaves it unknown, so that a reader started before the
// first write still learns the size from it later.
func (a *StoreArchive) learn(ctx context.Context) error {
	if a.size.Load() != 0 {
		return nil
	}
	for _, st := range a.stores {
		objs, err := st.List(ctx, Root(a.target))
		if err != nil {
			return fmt.Errorf("wal list %s in %s: %w", a.target, st.Name(), err)
		}
		tries := 0
		for _, o := range objs {
			if tries == learnTries {
				break
			}
			tries++
			n, err := a.sizeOf(ctx, st, o.Key)
			if err != nil && !isCorrupt(err) {
				return err
			}
			if err == nil {
				a.size.CompareAndSwap(0, n)
				return nil
			}
		}
	}
	return nil
}

// sizeOf reads the segment size recorded in the header of the object at
// key, checked as readHeader checks it (signature, key) with that size.
func (a *StoreArchive) sizeOf(ctx context.Context, st store.Store, key string) (uint64, error) {
	if !strings.HasPrefix(key, Root(a.target)) {
		return 0, fmt.Errorf("%w: %s: not in the archive", ErrCorrupt, key)
	}
	rc, err := st.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("wal read %s from %s: %w", key, st.Name(), err)
	}
	defer rc.Close()
	line, err := bufio.NewReaderSize(io.LimitReader(rc, maxHeader), maxHeader).ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("%w: %s: header: %w", ErrCorrupt, key, err)
	}
	line = line[:len(line)-1]
	var probe struct {
		SegmentSize uint64 `json:"segment_size"`
	}
	if err := json.Unmarshal(line, &probe); err != nil || !validSegmentSize(probe.SegmentSize) {
		return 0, fmt.Errorf("%w: %s: no valid segment size in its header", ErrCorrupt, key)
	}
	pk, ok := parseKey(a.target, key, probe.SegmentSize)
	if !ok {
		return 0, fmt.Errorf("%w: %s: not a key of a %d-byte segment archive", ErrCorrupt, key, probe.SegmentSize)
	}
	if _, err := a.checkHeader(line, pk, probe.SegmentSize); err != nil {
		return 0, err
	}
	return probe.SegmentSize, nil
}
