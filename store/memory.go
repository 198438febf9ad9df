package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Memory keeps objects in memory. It exists for tests and examples: it
// meets the whole Store contract (the same suite runs on it as on the real
// backends), so logic above the store can be tested without a server, and
// it shows what a new backend needs: one file like this one and one entry
// where the programs build their stores (cmd/internal/wire).
type Memory struct {
	name string

	mu      sync.Mutex
	objects map[string]memObject
	seq     uint64
}

type memObject struct {
	data     []byte
	meta     map[string]string
	modified time.Time
	etag     string
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store reporting name (MemoryName when empty).
func NewMemory(name string) *Memory {
	if name == "" {
		name = MemoryName
	}
	return &Memory{name: name, objects: map[string]memObject{}}
}

// Name implements Store.
func (m *Memory) Name() string { return m.name }

// Put implements Store. The object becomes visible only after the reader
// is exhausted without error, like the real backends' atomic publish.
func (m *Memory) Put(ctx context.Context, key string, r io.Reader, meta map[string]string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("memory put: %w", err)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, contextReader{ctx: ctx, r: r}); err != nil {
		return fmt.Errorf("memory put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory put %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	m.objects[key] = memObject{data: buf.Bytes(), meta: maps.Clone(meta), modified: time.Now(), etag: strconv.FormatUint(m.seq, 16)}
	return nil
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) (io.ReadCloser, error) {
	o, err := m.lookup("get", key)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// Stat implements Store.
func (m *Memory) Stat(_ context.Context, key string) (ObjectInfo, error) {
	o, err := m.lookup("stat", key)
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Key: key, Size: int64(len(o.data)), LastModified: o.modified, Metadata: maps.Clone(o.meta), ETag: o.etag}, nil
}

// List implements Store.
func (m *Memory) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory list %q: %w", prefix, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ObjectInfo
	for k, o := range m.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, ObjectInfo{Key: k, Size: int64(len(o.data)), LastModified: o.modified, ETag: o.etag})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key string) error {
	if _, err := m.lookup("delete", key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
	return nil
}

func (m *Memory) lookup(op, key string) (memObject, error) {
	if err := ValidateKey(key); err != nil {
		return memObject{}, fmt.Errorf("memory %s: %w", op, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return memObject{}, fmt.Errorf("memory %s %s: %w", op, key, ErrNotFound)
	}
	return o, nil
}
