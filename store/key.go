package store

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"
)

// ValidateKey rejects keys that could escape a backend's root: absolute
// paths, "..", empty segments and NUL bytes. Backends call it before any I/O
// so that a hostile name can never reach the filesystem or the bucket.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("store: empty key")
	case strings.ContainsRune(key, 0):
		return fmt.Errorf("store: key %q contains NUL", key)
	case strings.HasPrefix(key, "/"), strings.Contains(key, "\\"):
		return fmt.Errorf("store: key %q must be a relative slash path", key)
	case path.Clean(key) != key:
		return fmt.Errorf("store: key %q is not clean", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == ".." || seg == "." || seg == "" {
			return fmt.Errorf("store: key %q has an invalid segment %q", key, seg)
		}
	}
	return nil
}

// contextReader stops a copy as soon as ctx ends. Plain readers such as a
// pipe from pg_dump do not watch a context, so without it a cancelled upload
// would keep reading until the producer finished on its own.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
