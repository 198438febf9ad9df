package engine_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/internal/testbench/procfs"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// TestArchivesMadeBeforeCodecsStillRestore writes backups the way the
// service did before codecs existed (pg_dump's own gzip, no codec in the
// manifest, keys without a codec extension) and restores them with an
// engine whose codec is zstd.
func TestArchivesMadeBeforeCodecsStillRestore(t *testing.T) {
	b := setup(t)
	for _, format := range engine.Formats {
		t.Run(format.String(), func(t *testing.T) {
			t.Parallel()
			old, local, mio := b.newEngineWith(t, engine.Codec{PgDump: true})
			ctx := context.Background()
			m, err := old.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("before"), Format: format})
			if err != nil {
				t.Fatal(err)
			}
			if m.Codec != "" || m.ArchiveKey != engine.Prefix+"before"+format.Extension() {
				t.Fatalf("old-style backup has codec %q and key %s", m.Codec, m.ArchiveKey)
			}
			current, err := engine.New(engine.Options{Conn: b.conn(b.source), Stores: []store.Store{local, mio},
				Finder: &pgtool.Finder{Forced: b.env.PGBin}, WorkDir: t.TempDir(), Codec: engine.DefaultCodec})
			if err != nil {
				t.Fatal(err)
			}
			target := testbench.UniqueName("before_" + format.String())
			b.env.DropDBOnCleanup(t, target)
			if _, err := current.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("before"), From: store.MinIOName, TargetDatabase: pgtool.MustParseIdent(target)}); err != nil {
				t.Fatalf("restore of an old archive: %v", err)
			}
			if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), b.want); diff != "" {
				t.Fatalf("restored old archive differs:\n%s", diff)
			}
		})
	}
}

// TestArchiveThatDoesNotDecompressIsRefused stores garbage under a manifest
// whose checksum matches it, as a bug or a hand-made upload could: the
// checksum passes, the decoder fails, and the target is never touched.
func TestArchiveThatDoesNotDecompressIsRefused(t *testing.T) {
	b := setup(t)
	t.Parallel()
	e, _, mio := b.newEngineWith(t, engine.DefaultCodec)
	ctx := context.Background()
	m, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("garbled"), Format: engine.FormatCustom, Stores: []string{store.MinIOName}})
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte("not zstd "), 50000)
	if err := mio.Put(ctx, m.ArchiveKey, bytes.NewReader(junk), nil); err != nil {
		t.Fatal(err)
	}
	editManifest(t, mio, "garbled", func(mf map[string]any) { setAllSums(mf, junk, 0) })
	target := testbench.UniqueName("garbled")
	b.env.CreateDB(t, target)
	b.env.Exec(t, target, `CREATE TABLE keep (v int)`, `INSERT INTO keep VALUES (1)`)
	before := b.env.Fingerprint(t, target)
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("garbled"), TargetDatabase: pgtool.MustParseIdent(target), Clean: true}); !errors.Is(err, engine.ErrUnreadable) {
		t.Fatalf("restore of an archive that does not decompress: err = %v, want ErrUnreadable", err)
	}
	if diff := testbench.DiffFingerprints(b.env.Fingerprint(t, target), before); diff != "" {
		t.Fatalf("target changed:\n%s", diff)
	}
}

// TestCancelledBackupLeavesNoEncoderOrChild cancels a zstd backup while it
// streams and checks that the encoder goroutines and pg_dump are gone.
// Not parallel: it reads this process's goroutines.
func TestCancelledBackupLeavesNoEncoderOrChild(t *testing.T) {
	b := setup(t)
	db := testbench.UniqueName("cancel_src")
	b.env.CreateSlowFixture(t, db)
	for _, codec := range []engine.Codec{engine.DefaultCodec, {Name: engine.CodecGzip, Level: 6}} {
		e, _, _ := b.newEngineWith(t, codec)
		ctx, cancel := context.WithCancel(context.Background())
		var once atomic.Bool
		_, err := e.Backup(ctx, engine.BackupRequest{Name: engine.MustParseName("cancelled-" + codec.Name), Database: pgtool.MustParseIdent(db), Format: engine.FormatCustom,
			Stores: []string{store.MinIOName}, Progress: func(p engine.Progress) {
				if p.Phase == "uploading" && p.Bytes > 0 && once.CompareAndSwap(false, true) {
					cancel()
				}
			}})
		cancel()
		if err == nil || !once.Load() {
			t.Fatalf("%s: backup err = %v (cancelled while uploading: %v), want it cancelled mid-stream", codec.Name, err, once.Load())
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			stacks := goroutines()
			encoders := strings.Count(stacks, "klauspost/compress/zstd") + strings.Count(stacks, "klauspost/pgzip") +
				strings.Count(stacks, "engine.Codec.encodeStream")
			children := procfs.ChildrenNamed(os.Getpid(), "pg_dump")
			if encoders == 0 && len(children) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d encoder goroutines and pg_dump children %v left after cancel:\n%s", codec.Name, encoders, children, stacks)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func goroutines() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
