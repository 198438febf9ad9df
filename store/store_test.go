package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/store"
	"github.com/autograph/pgbackup/store/storetest"
)

func TestLocalContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestMemoryContract runs the contract on the in-memory backend, the
// example of what a third backend must meet.
func TestMemoryContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory("") })
}

func TestMinIOContract(t *testing.T) {
	env := testbench.Require(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return NewTestMinIO(t, env)
	})
}

// NewTestMinIO returns a store on a fresh bucket of the bench's MinIO with
// the smallest part size S3 allows, so small test objects span parts.
func NewTestMinIO(t *testing.T, env testbench.Env) *store.MinIO {
	t.Helper()
	bucket := strings.ReplaceAll(testbench.UniqueName("ct"), "_", "-")
	s, err := store.NewMinIO(context.Background(), store.MinIOConfig{
		Endpoint: env.MinIOEndpoint, AccessKey: env.MinIOUser, SecretKey: env.MinIOPassword,
		Bucket: bucket, PartSize: store.MinPartSize, UploadThreads: 2,
	})
	if err != nil {
		t.Fatalf("NewMinIO: %v", err)
	}
	return s
}

func TestMinIOMetadataAndNoIncompleteUploads(t *testing.T) {
	env := testbench.Require(t)
	s := NewTestMinIO(t, env)
	ctx := context.Background()
	if err := s.Put(ctx, "postgres/m.dump", strings.NewReader("x"), map[string]string{"sha256": "abc"}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "postgres/m.dump")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Metadata["sha256"]; got != "abc" {
		t.Errorf("metadata sha256 = %q, want %q (all: %v)", got, "abc", info.Metadata)
	}
	left, err := s.IncompleteUploads(ctx, "")
	if err != nil || len(left) != 0 {
		t.Errorf("IncompleteUploads = %v, %v; want none", left, err)
	}
}

func TestLocalIgnoresLeftoverTempFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	// What a crash in the middle of Put leaves behind.
	if err := os.MkdirAll(filepath.Join(dir, "postgres"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "postgres", ".x.dump.partial-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, err := s.List(context.Background(), "postgres/")
	if err != nil || len(objs) != 0 {
		t.Fatalf("List = %v, %v; want the temp file hidden", objs, err)
	}
	// The next Put of that key clears the leftover.
	if err := s.Put(context.Background(), "postgres/x.dump", strings.NewReader("whole"), nil); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "postgres", ".x.dump.partial-*"))
	if len(left) != 0 {
		t.Fatalf("leftover temp files after a new Put: %v", left)
	}
}

func TestMinIOUnreachableIsErrUnavailable(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback refuses connections immediately.
	_, err := store.NewMinIO(context.Background(), store.MinIOConfig{
		Endpoint: "http://127.0.0.1:1", AccessKey: "k", SecretKey: "s", Bucket: "bucket",
	})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("NewMinIO against closed port: err = %v, want store.ErrUnavailable", err)
	}
}

// TestLocalLinksCannotLeadOutside plants symbolic links inside the backup
// directory, as a hostile user of the machine might: one directory link
// and one file link pointing outside. No read, write, listing or delete
// may go through them.
func TestLocalLinksCannotLeadOutside(t *testing.T) {
	t.Parallel()
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret.dump")
	if err := os.WriteFile(secret, []byte("outside data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "postgres")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "file.dump")); err != nil {
		t.Fatal(err)
	}
	s, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "postgres/planted.dump", strings.NewReader("x"), nil); err == nil {
		t.Error("Put through a directory link succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted.dump")); err == nil {
		t.Error("Put wrote outside the backup directory")
	}
	if _, err := s.Get(ctx, "postgres/secret.dump"); err == nil {
		t.Error("Get through a directory link succeeded")
	}
	if _, err := s.Get(ctx, "file.dump"); err == nil {
		t.Error("Get of a link to a file outside succeeded")
	}
	if objs, err := s.List(ctx, ""); err != nil || len(objs) != 0 {
		t.Errorf("List = %v, %v; want nothing listed through links", objs, err)
	}
	if err := s.Delete(ctx, "postgres/secret.dump"); err == nil {
		t.Error("Delete through a directory link succeeded")
	}
	if _, err := os.Stat(secret); err != nil {
		t.Errorf("the file outside is gone: %v", err)
	}
}
