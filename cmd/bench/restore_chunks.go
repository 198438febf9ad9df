package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"

	"github.com/minio/minio-go/v7"

	"github.com/autograph/pgbackup/jobs/engine"
)

// engineRestoreUnchunkedStep restores the backup the way a manifest
// written before chunk sums restores: the archive is copied to WORK_DIR
// and its SHA-256 checked whole before pg_restore reads it. Against
// engineRestoreStep (each chunk checked in memory on its way into
// pg_restore), it shows what the chunk sums save.
const engineRestoreUnchunkedStep = "engine: pgbackup restore, manifest without chunk sums (verified copy in WORK_DIR first)"

// engineRestoreUnchunked removes the chunk sums from the backup's
// manifest, restores, and puts the manifest back.
func (b *bench) engineRestoreUnchunked(section string) scenario {
	return func(ctx context.Context, _ int) ([]step, error) {
		key := engine.ManifestKey(engine.MustParseName(engineBackupName("", 1)))
		restoreManifest, err := b.stripChunkSums(ctx, key)
		if err != nil {
			return nil, err
		}
		defer func() { _ = restoreManifest() }()
		db := b.o.db + "_restore_unchunked"
		if err := dropDatabase(ctx, b.env, db); err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, b.o.pgbackup, "restore", "-name", engineBackupName("", 1),
			"-from", "minio", "-target", db)
		cmd.Env = b.engineEnv("")
		u, err := measure(ctx, cmd, b.env.minioPid)
		if err != nil {
			return nil, fmt.Errorf("engine restore without chunk sums: %w", err)
		}
		note, err := b.checkRestored(ctx, db)
		return []step{{section: section, name: engineRestoreUnchunkedStep, u: u, archive: -1, note: note}}, err
	}
}

// stripChunkSums rewrites the manifest at key without its chunk sums and
// raw size, and returns how to put the original back.
func (b *bench) stripChunkSums(ctx context.Context, key string) (func() error, error) {
	obj, err := b.mc.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	orig, err := io.ReadAll(obj)
	_ = obj.Close()
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	dec := json.NewDecoder(bytes.NewReader(orig))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", key, err)
	}
	for _, f := range []string{"chunk_size", "chunk_sha256", "raw_size_bytes"} {
		delete(m, f)
	}
	stripped, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	put := func(data []byte) error {
		_, err := b.mc.PutObject(ctx, b.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		if err != nil {
			return fmt.Errorf("write manifest %s: %w", key, err)
		}
		return nil
	}
	if err := put(stripped); err != nil {
		return nil, err
	}
	return func() error { return put(orig) }, nil
}
