package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/autograph/pgbackup/store"
)

// BaseReader reads one base backup from the store that holds it: its tar
// and its backup_manifest, each checked chunk by chunk against the
// manifest before a byte is handed on (see openVerified).
type BaseReader struct {
	// Manifest is the base backup's (signature checked, see OpenBase).
	Manifest *Manifest
	e        *Engine
	s        store.Store
}

// OpenBase finds a base backup in the named store (the first that holds
// it when from is empty) and checks its manifest's signature (unless
// allowUnsigned). A backup that is not a base backup is ErrInvalid.
func (e *Engine) OpenBase(ctx context.Context, name Name, from string, allowUnsigned bool) (*BaseReader, error) {
	var stores []string
	if from != "" {
		stores = []string{from}
	}
	m, where, err := e.Find(ctx, name, stores)
	if err != nil {
		return nil, fmt.Errorf("open base backup: %w", err)
	}
	if m.Content != ContentBase {
		return nil, fmt.Errorf("open base backup %s: %w: not a base backup", name, ErrInvalid)
	}
	if err := e.checkSignature(m, allowUnsigned); err != nil {
		return nil, fmt.Errorf("open base backup %s: %w", name, err)
	}
	s, _ := e.pick(where[:1])
	return &BaseReader{Manifest: m, e: e, s: s[0]}, nil
}

// Tar streams the data directory as pg_basebackup wrote it, decrypted and
// decompressed. Its EOF means every stored byte matched the manifest and
// it decoded to the size recorded; any mismatch is an error of Read
// (ErrChecksumMismatch, ErrInvalidArchive, ErrUnreadable).
func (b *BaseReader) Tar(ctx context.Context, progress ProgressFunc) (io.ReadCloser, error) {
	return b.e.openDecoded(ctx, b.s, b.Manifest, progress)
}

// BackupManifest streams PostgreSQL's backup_manifest, checked like Tar.
func (b *BaseReader) BackupManifest(ctx context.Context) (io.ReadCloser, error) {
	return b.e.openDecoded(ctx, b.s, b.Manifest.companion(b.Manifest.Base.BackupManifest), nil)
}

// openDecoded opens one stored archive (m's ArchiveKey) decrypted and
// decoded, bounded by the raw size m records.
func (e *Engine) openDecoded(ctx context.Context, s store.Store, m *Manifest, progress ProgressFunc) (io.ReadCloser, error) {
	codec, err := parseManifestCodec(m.Codec)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidArchive, m.Name, err)
	}
	stored, err := e.openVerified(ctx, s, m, "reading", progress)
	if err != nil {
		return nil, err
	}
	if err := stored.prime(); err != nil && !errors.Is(err, io.EOF) {
		_ = stored.Close()
		return nil, err
	}
	plain, err := e.enc.decrypt(m, stored)
	if err != nil {
		_ = stored.Close()
		return nil, fmt.Errorf("fetch %s: %w", m.ArchiveKey, explain(stored, err))
	}
	dec, err := codec.decoder(plain)
	if err != nil {
		_ = stored.Close()
		return nil, fmt.Errorf("fetch %s: %w", m.ArchiveKey, explain(stored, fmt.Errorf("%w: %w", errCorrupt, err)))
	}
	limit := streamBudget(m)
	limit.r = dec
	return &decodedStream{r: limit, dec: dec, stored: stored, key: m.ArchiveKey}, nil
}

// decodedStream is an archive decoded as it is read, whose end is
// reported only once the rest of the stored object matched too.
type decodedStream struct {
	r      io.Reader
	dec    io.Closer
	stored verifiedStream
	key    string
	err    error
}

func (d *decodedStream) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.r.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		if oerr := streamOutcome(d.stored, nil); oerr != nil {
			err = oerr
		}
		d.err = err
	case err != nil:
		d.err = streamOutcome(d.stored, err)
		if errors.Is(d.err, errStreamBroken) {
			d.err = fmt.Errorf("fetch %s: %w: %w", d.key, ErrUnreadable, d.err)
		}
		err = d.err
	}
	return n, err
}

func (d *decodedStream) Close() error {
	_ = d.dec.Close()
	return d.stored.Close()
}

// verifyBase is Verify of a base backup, with no disk: the tar is read
// whole (chunk sums, decryption, decoding to the recorded size), must be
// a complete base backup starting where the manifest says, and the
// backup_manifest inside it must be the companion stored beside it.
func (e *Engine) verifyBase(ctx context.Context, s store.Store, m *Manifest) error {
	b := &BaseReader{Manifest: m, e: e, s: s}
	tarStream, err := b.Tar(ctx, nil)
	if err != nil {
		return err
	}
	inTar := sha256.New()
	scan, err := scanBaseTar(tarStream, inTar, maxBackupManifest)
	_ = tarStream.Close()
	if err != nil {
		return err
	}
	if err := scan.complete(); err != nil {
		return err
	}
	if scan.startLSN.String() != m.Base.StartLSN || scan.timeline != m.Base.Timeline || scan.unpacked != m.Base.UnpackedBytes {
		return fmt.Errorf("%w: %s holds a base backup from %s on timeline %d of %d bytes, manifest says %s, %d, %d",
			ErrInvalidArchive, m.ArchiveKey, scan.startLSN, scan.timeline, scan.unpacked, m.Base.StartLSN, m.Base.Timeline, m.Base.UnpackedBytes)
	}
	bm, err := b.BackupManifest(ctx)
	if err != nil {
		return err
	}
	defer bm.Close()
	stored := sha256.New()
	if _, err := io.Copy(stored, bm); err != nil {
		return err
	}
	if got, want := hex.EncodeToString(stored.Sum(nil)), hex.EncodeToString(inTar.Sum(nil)); got != want {
		return fmt.Errorf("%w: %s is not the backup_manifest inside %s", ErrInvalidArchive, m.Base.BackupManifest.ArchiveKey, m.ArchiveKey)
	}
	return nil
}
