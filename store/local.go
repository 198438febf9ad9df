package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
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
// directory, is fsynced, then renamed over the final name, and the
// directory is fsynced too, so a crash leaves either the old object, the
// new one, or a hidden temporary file, never a truncated file under the
// real name. Every file is reached through an os.Root, so a symbolic link
// inside the directory can never lead a read, write or delete outside it.
// Local does not keep user metadata.
type Local struct {
	root string
	r    *os.Root
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
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("local store %s: %w", dir, err)
	}
	return &Local{root: abs, r: r}, nil
}

// Name implements Store.
func (l *Local) Name() string { return LocalName }

// Root returns the directory the store writes under.
func (l *Local) Root() string { return l.root }

// path turns a key into a name relative to the root.
func (l *Local) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.FromSlash(key), nil
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, _ map[string]string) (err error) {
	dst, err := l.path(key)
	if err != nil {
		return fmt.Errorf("local put: %w", err)
	}
	dir := filepath.Dir(dst)
	if err := l.r.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	// A writer killed during an earlier attempt at this key left its temp
	// file behind; clear it, as MinIO's Put clears abandoned uploads.
	// (Callers never write one key from two places at once: names are
	// reserved per task.)
	prefix := "." + filepath.Base(dst) + tempMarker
	if stale, _ := fs.Glob(l.r.FS(), path.Join(filepath.ToSlash(dir), globEscape(prefix)+"*")); len(stale) > 0 {
		for _, f := range stale {
			_ = l.r.Remove(filepath.FromSlash(f))
		}
	}
	tmpName := filepath.Join(dir, prefix+randomSuffix())
	tmp, err := l.r.OpenFile(tmpName, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = l.r.Remove(tmpName)
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
	if err = l.r.Rename(tmpName, dst); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	// Without syncing the directory the rename itself may be lost on power
	// failure, which would silently drop a backup reported as done.
	if err = l.syncDir(dir); err != nil {
		return fmt.Errorf("local put %s: fsync directory: %w", key, err)
	}
	return nil
}

func (l *Local) syncDir(dir string) error {
	d, err := l.r.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get implements Store.
func (l *Local) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, fmt.Errorf("local get: %w", err)
	}
	f, err := l.r.Open(p)
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
	fi, err := l.r.Stat(p)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("local stat %s: %w", key, mapFSError(err))
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("local stat %s: %w", key, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime(), ETag: fileETag(fi)}, nil
}

// List implements Store. Only regular files are objects: links, and
// anything a link points to, are never listed.
func (l *Local) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := fs.WalkDir(l.r.FS(), ".", func(key string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			// Skip whole subtrees that cannot contain the prefix.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) || strings.Contains(d.Name(), tempMarker) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime(), ETag: fileETag(fi)})
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
	if err := l.r.Remove(p); err != nil {
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

// globEscape quotes the glob metacharacters a file name may contain.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fileETag stands for a file's content: Put replaces files by rename, so a
// new content always comes with a new modification time or size.
func fileETag(fi fs.FileInfo) string {
	return fmt.Sprintf("%x-%x", fi.Size(), fi.ModTime().UnixNano())
}
