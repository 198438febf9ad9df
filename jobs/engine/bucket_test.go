package engine_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

func (b *bench) bucket(t *testing.T, prefix string) *store.Bucket {
	t.Helper()
	name := strings.ReplaceAll(testbench.UniqueName(prefix), "_", "-")
	bk, err := store.OpenOrCreateBucket(context.Background(), store.MinIOConfig{Endpoint: b.env.MinIOEndpoint,
		AccessKey: b.env.MinIOUser, SecretKey: b.env.MinIOPassword, Bucket: name})
	if err != nil {
		t.Fatal(err)
	}
	return bk
}

// bucketSums reads every object: key -> sha256, content type and metadata.
func bucketSums(t *testing.T, bk *store.Bucket) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := bk.Walk(context.Background(), "", func(o store.BucketObject, r io.Reader) error {
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return err
		}
		out[o.Key] = fmt.Sprintf("%d %s %s %v", n, hex.EncodeToString(h.Sum(nil)), o.ContentType, o.UserMetadata)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBucketBackupRoundTrip(t *testing.T) {
	b := setup(t)
	t.Parallel()
	ctx := context.Background()
	src := b.bucket(t, "src")
	// 1,000 small objects with metadata, and one of 100 MiB.
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	sem := make(chan struct{}, 32)
	for i := range 1000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			data := []byte(fmt.Sprintf("object %d %s", i, strings.Repeat("x", i%97)))
			errs <- src.Put(ctx, store.BucketObject{Key: fmt.Sprintf("docs/%03d/item-%d.json", i%17, i), Size: int64(len(data)),
				ContentType: "application/json", UserMetadata: map[string]string{"owner": fmt.Sprintf("u%d", i%5)}}, bytes.NewReader(data))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 100<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := src.Put(ctx, store.BucketObject{Key: "media/big.bin", Size: int64(len(big)), ContentType: "video/mp4",
		UserMetadata: map[string]string{"camera": "front"}}, bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	want := bucketSums(t, src)
	if len(want) != 1001 {
		t.Fatalf("source holds %d objects, want 1001", len(want))
	}
	e, _, _ := b.newEngineWith(t, engine.DefaultCodec)
	m, err := e.BucketBackup(ctx, engine.BucketBackupRequest{Name: engine.MustParseName("files"), Source: src, Stores: []string{store.MinIOName}})
	if err != nil {
		t.Fatalf("bucket backup: %v", err)
	}
	if m.Content != engine.ContentBucket || m.Objects != 1001 || m.ObjectBytes < 100<<20 {
		t.Fatalf("manifest kind %q objects %d bytes %d", m.Content, m.Objects, m.ObjectBytes)
	}
	list, err := e.List(ctx, nil)
	if err != nil || len(list) != 1 || list[0].Content != engine.ContentBucket {
		t.Fatalf("list = %+v, %v; want the bucket backup with its kind", list, err)
	}
	dst := b.bucket(t, "dst")
	res, err := e.BucketRestore(ctx, engine.BucketRestoreRequest{Name: engine.MustParseName("files"), Destination: dst})
	if err != nil || res.Restored != 1001 {
		t.Fatalf("bucket restore = %+v, %v", res, err)
	}
	got := bucketSums(t, dst)
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("object %s: restored %q, want %q", k, got[k], v)
		}
	}
	// Existing objects are kept unless asked to overwrite.
	changed := []byte("changed since")
	if err := dst.Put(ctx, store.BucketObject{Key: "media/big.bin", Size: int64(len(changed)), ContentType: "text/plain"}, bytes.NewReader(changed)); err != nil {
		t.Fatal(err)
	}
	if res, err = e.BucketRestore(ctx, engine.BucketRestoreRequest{Name: engine.MustParseName("files"), Destination: dst}); err != nil || res.Skipped != 1001 || res.Restored != 0 {
		t.Fatalf("restore without overwrite = %+v, %v; want all 1001 kept", res, err)
	}
	if bucketSums(t, dst)["media/big.bin"] == want["media/big.bin"] {
		t.Fatal("an existing object was overwritten without overwrite")
	}
	if res, err = e.BucketRestore(ctx, engine.BucketRestoreRequest{Name: engine.MustParseName("files"), Destination: dst, Overwrite: true}); err != nil || res.Restored != 1001 {
		t.Fatalf("restore with overwrite = %+v, %v", res, err)
	}
	if bucketSums(t, dst)["media/big.bin"] != want["media/big.bin"] {
		t.Fatal("overwrite did not restore the object")
	}
	if _, err := e.Restore(ctx, engine.RestoreRequest{Name: engine.MustParseName("files"), TargetDatabase: pgtool.MustParseIdent("nope")}); err == nil {
		t.Fatal("a bucket backup restored as a database")
	}
}

// TestBucketBackupOfAChangingObject rewrites an object while it is backed
// up: the backup holds one version or the other, never a mix.
func TestBucketBackupOfAChangingObject(t *testing.T) {
	b := setup(t)
	t.Parallel()
	ctx := context.Background()
	src := b.bucket(t, "chg")
	versions := map[string]bool{}
	put := func(fill byte) {
		data := bytes.Repeat([]byte{fill}, 32<<20)
		sum := sha256.Sum256(data)
		versions[hex.EncodeToString(sum[:])] = true
		if err := src.Put(ctx, store.BucketObject{Key: "live.bin", Size: int64(len(data))}, bytes.NewReader(data)); err != nil {
			t.Error(err)
		}
	}
	put('a')
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range []byte("bcdef") {
			put(c)
		}
	}()
	e, _, _ := b.newEngineWith(t, engine.DefaultCodec)
	if _, err := e.BucketBackup(ctx, engine.BucketBackupRequest{Name: engine.MustParseName("changing"), Source: src, Stores: []string{store.MinIOName}}); err != nil {
		t.Fatal(err)
	}
	<-done
	dst := b.bucket(t, "chgdst")
	if _, err := e.BucketRestore(ctx, engine.BucketRestoreRequest{Name: engine.MustParseName("changing"), Destination: dst}); err != nil {
		t.Fatal(err)
	}
	got := bucketSums(t, dst)["live.bin"]
	fields := strings.Fields(got)
	if len(fields) < 2 || !versions[fields[1]] {
		t.Fatalf("restored object %q is none of the versions written", got)
	}
}
