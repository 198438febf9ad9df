package engine

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// writeTar streams the regular files directly inside dir (pg_dump -Fd
// writes no subdirectories) as a tar archive, in a stable order.
func writeTar(w io.Writer, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("tar %s: %w", dir, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return fmt.Errorf("tar %s: unexpected non-regular entry %s", dir, e.Name())
		}
		if err := addFile(tw, dir, e.Name()); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tar %s: %w", dir, err)
	}
	return nil
}

func addFile(tw *tar.Writer, dir, name string) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("tar %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("tar %s: %w", name, err)
	}
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("tar %s: %w", name, err)
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("tar %s: %w", name, err)
	}
	return nil
}

// extractTar unpacks a directory-format archive into dir. Only regular
// files with plain names are accepted, so an archive cannot write outside
// dir whatever it holds; sparse entries (which expand to far more than
// they store) are refused, and the total written is capped at limit bytes
// (no cap when negative).
func extractTar(r io.Reader, dir string, limit int64) error {
	tr := tar.NewReader(r)
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("untar: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Name != filepath.Base(hdr.Name) ||
			hdr.Name == "." || hdr.Name == ".." || strings.ContainsAny(hdr.Name, `/\`) {
			return fmt.Errorf("%w: untar: refusing entry %q", ErrInvalidArchive, hdr.Name)
		}
		if isSparse(hdr) {
			return fmt.Errorf("%w: untar: refusing sparse entry %q", ErrInvalidArchive, hdr.Name)
		}
		total += hdr.Size
		if limit >= 0 && total > limit {
			return fmt.Errorf("%w: untar: entries add up to more than the archive's %d bytes", ErrInvalidArchive, limit)
		}
		f, err := os.OpenFile(filepath.Join(dir, hdr.Name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, fs.FileMode(0o600))
		if err != nil {
			return fmt.Errorf("untar %s: %w", hdr.Name, err)
		}
		// The header's size is what the reader yields for a regular entry;
		// LimitReader keeps that promise whatever the reader does.
		_, err = io.Copy(f, io.LimitReader(tr, hdr.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("untar %s: %w", hdr.Name, err)
		}
	}
}

// isSparse reports GNU or PAX sparse entries. archive/tar reports old GNU
// sparse files with their own type, and PAX ones (GNU.sparse.* records) as
// regular files whose data expands on reading.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
