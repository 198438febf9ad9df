// Package archivertest has an in-memory wal.Archive for the streamer's
// tests. It checks the contract as it goes (chunks contiguous, each
// segment stored once, no byte stored twice) and records every breach, so
// a test can assert "no gap, no duplicate" from what was written.
package archivertest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/autograph/pgbackup/jobs/wal"
)

// Chunk is one PutPartial.
type Chunk struct {
	Timeline uint32
	Start    wal.LSN
	Data     []byte
}

// Memory is a wal.Archive in memory. SegmentSize is set by the streamer
// (SetSegmentSize) when left 0.
type Memory struct {
	SegmentSize uint64

	mu        sync.Mutex
	segments  map[uint32]map[uint64][]byte
	chunks    []Chunk
	histories map[uint32][]byte
	end       wal.Position
	breaches  []string
	// Fail, when set, is called before every write; its error is returned.
	Fail func() error
}

var _ wal.Archive = (*Memory)(nil)

// End implements wal.Archive.
func (m *Memory) End(context.Context) (wal.Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.end, nil
}

// SetSegmentSize implements wal.Archive: it sets SegmentSize when unset
// and refuses another size.
func (m *Memory) SetSegmentSize(_ context.Context, n uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.SegmentSize == 0 {
		m.SegmentSize = n
	}
	if m.SegmentSize != n {
		return fmt.Errorf("memory archive: %w: %d, the archive's is %d", wal.ErrSegmentSize, n, m.SegmentSize)
	}
	return nil
}

func (m *Memory) failed() error {
	if m.Fail != nil {
		return m.Fail()
	}
	return nil
}

// advance records [start, end) on tli as stored; anything but the next
// byte after the archive's end is a breach (a gap or a duplicate).
func (m *Memory) advance(op string, tli uint32, start, end wal.LSN) {
	if m.end != (wal.Position{}) && start != m.end.LSN {
		m.breaches = append(m.breaches, fmt.Sprintf("%s [%s, %s) on timeline %d: archive ends at %s", op, start, end, tli, m.end.LSN))
	}
	if m.end.Timeline > tli {
		m.breaches = append(m.breaches, fmt.Sprintf("%s on timeline %d after timeline %d", op, tli, m.end.Timeline))
	}
	m.end = wal.Position{Timeline: tli, LSN: end}
}

// PutPartial implements wal.Archive.
func (m *Memory) PutPartial(_ context.Context, tli uint32, start wal.LSN, data []byte) error {
	if err := m.failed(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	end := start + wal.LSN(len(data))
	if len(data) == 0 || uint64(start)/m.SegmentSize != uint64(end-1)/m.SegmentSize {
		m.breaches = append(m.breaches, fmt.Sprintf("chunk [%s, %s) empty or across segments", start, end))
	}
	m.chunks = append(m.chunks, Chunk{Timeline: tli, Start: start, Data: slices.Clone(data)})
	m.advance("chunk", tli, start, end)
	return nil
}

// PutSegment implements wal.Archive. A segment may complete chunks already
// stored, so its start need not be the archive's end, but its end must lie
// past it.
func (m *Memory) PutSegment(_ context.Context, tli uint32, segno uint64, data []byte) error {
	if err := m.failed(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if uint64(len(data)) != m.SegmentSize {
		m.breaches = append(m.breaches, fmt.Sprintf("segment %d: %d bytes", segno, len(data)))
	}
	if m.segments == nil {
		m.segments = map[uint32]map[uint64][]byte{}
	}
	if m.segments[tli] == nil {
		m.segments[tli] = map[uint64][]byte{}
	}
	if _, dup := m.segments[tli][segno]; dup {
		m.breaches = append(m.breaches, fmt.Sprintf("segment %d of timeline %d stored twice", segno, tli))
	}
	m.segments[tli][segno] = slices.Clone(data)
	start := wal.LSN(segno * m.SegmentSize)
	end := start + wal.LSN(m.SegmentSize)
	// The segment's own start is fine when the archive ends inside it.
	from := start
	if m.end.LSN > start && m.end.LSN < end {
		from = m.end.LSN
	}
	m.advance("segment", tli, from, end)
	return nil
}

// PutHistory implements wal.Archive.
func (m *Memory) PutHistory(_ context.Context, tli uint32, content []byte) error {
	if err := m.failed(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.histories == nil {
		m.histories = map[uint32][]byte{}
	}
	m.histories[tli] = slices.Clone(content)
	return nil
}

// Breaches lists every gap, duplicate or malformed write seen.
func (m *Memory) Breaches() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.breaches)
}

// Segments returns the complete segments of tli by number.
func (m *Memory) Segments(tli uint32) map[uint64][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[uint64][]byte{}
	for k, v := range m.segments[tli] {
		out[k] = v
	}
	return out
}

// Chunks returns every chunk stored, in order.
func (m *Memory) Chunks() []Chunk {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.chunks)
}

// History returns the stored history file of tli, nil if none.
func (m *Memory) History(tli uint32) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.histories[tli])
}
