package engine

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/autograph/pgbackup/store"
)

// Verify re-reads a backup from one store (the first holding it when from
// is empty) and checks it against its manifest: signature (when manifests
// are signed), size and checksum; that pg_restore can read its table of
// contents; and, when the manifest has row counts, that the archive's data
// holds exactly that many rows per table. A base backup is read as a
// stream instead (see verifyBase).
func (e *Engine) Verify(ctx context.Context, name Name, from string, allowUnsigned bool) (*Manifest, error) {
	var stores []string
	if from != "" {
		stores = []string{from}
	}
	m, where, err := e.Find(ctx, name, stores)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if err := e.checkSignature(m, allowUnsigned); err != nil {
		return m, fmt.Errorf("verify %s: %w", name, err)
	}
	s, _ := e.pick(where[:1])
	if m.Content == ContentBase {
		if err := e.verifyBase(ctx, s[0], m); err != nil {
			return m, fmt.Errorf("verify %s: %w", name, err)
		}
		return m, nil
	}
	archives := []*Manifest{m}
	if m.Content == ContentServer {
		archives = archives[:0]
		for _, d := range m.Databases {
			archives = append(archives, m.part(d))
		}
	}
	for _, a := range archives {
		if err := e.verifyArchive(ctx, s[0], a); err != nil {
			return m, fmt.Errorf("verify %s: %w", name, err)
		}
	}
	return m, nil
}

// verifyArchive checks one archive: checksum (and decryption, and
// decompression) into WORK_DIR, then, for formats pg_restore reads, its
// table of contents and the rows per table against the manifest's counts.
func (e *Engine) verifyArchive(ctx context.Context, s store.Store, m *Manifest) error {
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-verify-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	path, err := e.materialize(ctx, s, m, tmp, nil)
	if err != nil {
		return err
	}
	if m.Content == ContentBucket {
		return nil // its checksum is what can be checked without a bucket
	}
	spec := m.Format.spec()
	var counts map[string]int64
	if spec.listable {
		if counts, err = e.archiveRowCounts(ctx, spec, path, m.RowCounts != nil); err != nil {
			return err
		}
	} else if m.RowCounts != nil {
		if err := checkFile(path, func(r io.Reader) (err error) { counts, err = copyRowCounts(r); return err }); err != nil {
			return err
		}
	}
	if m.RowCounts != nil {
		if diff := compareCounts(m.RowCounts, counts); diff != "" {
			return fmt.Errorf("%w: %s: %s", ErrRowCountMismatch, m.Database, diff)
		}
	}
	return nil
}

// archiveRowCounts checks that pg_restore can read the archive's table of
// contents and, when withCounts, has pg_restore write its data as SQL and
// counts the COPY rows in that stream (nothing touches a disk or a server).
func (e *Engine) archiveRowCounts(ctx context.Context, spec formatSpec, path string, withCounts bool) (map[string]int64, error) {
	tools, err := e.finder.Newest(ctx)
	if err != nil {
		return nil, err
	}
	if err := tools.Command(ctx, e.conn, "pg_restore", "--list", "--format="+spec.flag, path).Run(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	if !withCounts {
		return nil, nil
	}
	cmd := tools.Command(ctx, e.conn, "pg_restore", "--data-only", "--file=-", "--format="+spec.flag, path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	counts, cerr := copyRowCounts(out)
	if cerr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	return counts, cerr
}
