package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// tempMarker is part of every in-progress file name. List skips such files so
// an upload that is still running, or was cut off by a crash, is never shown.
const tempMarker = ".partial-"

// Local stores objects as files below a root directory.
//
// Writes are atomic: data goes to a temporary file in the destination
// directory, is fsynced, then renamed over the final name, so a crash leaves
// either the old object, the new one, or a hidden temporary file, never a
// truncated file under the real name. Local does not keep user metadata.
type Local struct {
	root string
}

var _ Store = (*Local)(nil)

// NewLocal returns a store rooted at dir, creating it if needed.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, fmt.Errorf("local store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("local store %s: %w", dir, err)
	}
	return &Local{root: abs}, nil
}

// Name implements Store.
func (l *Local) Name() string { return LocalName }

// Root returns the directory the store writes under.
func (l *Local) Root() string { return l.root }

func (l *Local) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(key)), nil
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, _ map[string]string) (err error) {
	dst, err := l.path(key)
	if err != nil {
		return fmt.Errorf("local put: %w", err)
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	// A writer killed during an earlier attempt at this key left its temp
	// file behind; clear it, as MinIO's Put clears abandoned uploads.
	// (Callers never write one key from two places at once: names are
	// reserved per task.)
	if stale, _ := filepath.Glob(filepath.Join(dir, "."+filepath.Base(dst)+tempMarker+"*")); len(stale) > 0 {
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, contextReader{ctx: ctx, r: r}); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("local put %s: fsync: %w", key, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	// The context may have ended while the last bytes were flushed; a
	// cancelled Put must not publish.
	if err = ctx.Err(); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	// Without syncing the directory the rename itself may be lost on power
	// failure, which would silently drop a backup reported as done.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Get implements Store.
func (l *Local) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, fmt.Errorf("local get: %w", err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("local get %s: %w", key, mapFSError(err))
	}
	return f, nil
}

// Stat implements Store.
func (l *Local) Stat(_ context.Context, key string) (ObjectInfo, error) {
	p, err := l.path(key)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("local stat: %w", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("local stat %s: %w", key, mapFSError(err))
	}
	if fi.IsDir() {
		return ObjectInfo{}, fmt.Errorf("local stat %s: %w", key, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// List implements Store.
func (l *Local) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Skip whole subtrees that cannot contain the prefix.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) || strings.Contains(d.Name(), tempMarker) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local list %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store.
func (l *Local) Delete(_ context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return fmt.Errorf("local delete: %w", err)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("local delete %s: %w", key, mapFSError(err))
	}
	return nil
}

func mapFSError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
