// Package store moves backup archives in and out of a storage backend.
//
// Every backend streams: Put reads from an io.Reader and Get returns an
// io.ReadCloser, so an archive never has to fit in memory. Backends publish
// atomically: a Put that fails, or whose reader returns an error, leaves
// nothing visible under the key.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned, wrapped, by every backend when a key does not exist.
// Callers test for it with errors.Is and never see an SDK's own error types.
var ErrNotFound = errors.New("object not found")

// ErrUnavailable is returned, wrapped, when the backend cannot be reached at
// all (connection refused, DNS failure, timeout), as opposed to refusing a
// request. Callers use it to decide that a retry may succeed.
var ErrUnavailable = errors.New("store unreachable")

// ErrObjectChanged is returned, wrapped, when the bytes one GET of a bucket
// object returned do not hash to the ETag of the version that GET
// announced: the object was overwritten under the read and the stream may
// mix two versions. Reading it again gets one whole version.
var ErrObjectChanged = errors.New("object changed while it was read")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
	// ETag changes whenever the object's content may have changed (the S3
	// ETag; size and modification time for files), so callers can cache
	// what they read from an object and know when to read it again.
	ETag string
	// Metadata holds the user metadata given to Put. Backends that cannot
	// store metadata leave it nil.
	Metadata map[string]string
}

// Store is the contract every backend satisfies. Keys are slash-separated
// relative paths such as "postgres/nightly.dump"; backends reject keys that
// are absolute or contain "..".
type Store interface {
	// Name is a short stable identifier (LocalName, MinIOName, ...) used in
	// manifests, logs, task payloads and API requests.
	Name() string
	// Put stores everything read from r under key. It is idempotent: a
	// second Put of the same key replaces the object. If r returns an error
	// or ctx ends before r is exhausted, nothing is published under key.
	Put(ctx context.Context, key string, r io.Reader, meta map[string]string) error
	// Get opens the object for reading. It returns ErrNotFound, wrapped,
	// for a missing key, before any byte is read.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns the object's size and metadata, or ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes the object. Deleting a missing key returns ErrNotFound.
	Delete(ctx context.Context, key string) error
}

// Names of the built-in backends. They appear in manifests, task payloads
// and API requests, so they are never renamed.
const (
	LocalName  = "local"
	MinIOName  = "minio"
	MemoryName = "memory"
)

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
