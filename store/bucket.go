package store

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// BucketObject describes one object of a bucket that is backed up (not one
// of ours): what a restore needs to recreate it as it was.
type BucketObject struct {
	Key          string
	Size         int64
	ETag         string
	ContentType  string
	LastModified time.Time
	// UserMetadata without the x-amz-meta- prefix, keys in lower case.
	UserMetadata map[string]string
}

// Bucket reads and writes the objects of any bucket of an S3 server, for
// bucket backups. Unlike the store, it never creates the bucket it reads.
type Bucket struct {
	client *minio.Client
	name   string
}

// OpenBucket returns a handle on an existing bucket; ErrNotFound when the
// bucket does not exist.
func OpenBucket(ctx context.Context, cfg MinIOConfig) (*Bucket, error) {
	client, err := NewMinIOClient(cfg)
	if err != nil {
		return nil, err
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, mapMinIOError(err))
	}
	if !ok {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, ErrNotFound)
	}
	return &Bucket{client: client, name: cfg.Bucket}, nil
}

// OpenOrCreateBucket is OpenBucket creating the bucket when missing.
func OpenOrCreateBucket(ctx context.Context, cfg MinIOConfig) (*Bucket, error) {
	m, err := NewMinIO(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Bucket{client: m.client, name: cfg.Bucket}, nil
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Walk calls fn for every object under prefix, in key order, with the
// object's content opened: one GET per object, so what fn reads is one
// version of the object whatever happens to it meanwhile. Memory stays
// bounded by one object's stream, whatever the count.
func (b *Bucket) Walk(ctx context.Context, prefix string, fn func(BucketObject, io.Reader) error) error {
	for oi := range b.client.ListObjects(ctx, b.name, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("list %s: %w", b.name, mapMinIOError(oi.Err))
		}
		obj, err := b.client.GetObject(ctx, b.name, oi.Key, minio.GetObjectOptions{})
		if err != nil {
			return fmt.Errorf("get %s/%s: %w", b.name, oi.Key, mapMinIOError(err))
		}
		// The size, ETag and metadata of the version this GET reads.
		st, err := obj.Stat()
		if err != nil {
			_ = obj.Close()
			if IsNotFound(mapMinIOError(err)) {
				continue // deleted since the listing
			}
			return fmt.Errorf("get %s/%s: %w", b.name, oi.Key, mapMinIOError(err))
		}
		meta := map[string]string{}
		for k, v := range st.UserMetadata {
			meta[strings.ToLower(k)] = v
		}
		err = fn(BucketObject{Key: st.Key, Size: st.Size, ETag: st.ETag, ContentType: st.ContentType,
			LastModified: st.LastModified, UserMetadata: meta}, checkETag(obj, b.name+"/"+st.Key, st))
		_ = obj.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// checkETag makes r fail at its end with ErrObjectChanged when the bytes
// read do not hash to the ETag the GET announced. An S3 GET returns one
// version, and MinIO holds a read lock that makes an overwrite wait for it,
// but a server or a proxy that does neither would hand a backup a mix of
// two versions under the first one's ETag; this catches it where the ETag
// says what to expect: a plain MD5 (a single-part upload, not encrypted on
// the server). Multipart ETags hash the parts' MD5s, which would need the
// part sizes; those objects rely on the server's single-version GET.
func checkETag(r io.Reader, name string, st minio.ObjectInfo) io.Reader {
	if !plainMD5(st.ETag) || st.Metadata.Get("X-Amz-Server-Side-Encryption") != "" ||
		st.Metadata.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "" {
		return r
	}
	return &etagReader{r: r, h: md5.New(), name: name, want: strings.ToLower(st.ETag)}
}

func plainMD5(etag string) bool {
	if len(etag) != 32 {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}

// etagReader hashes what passes through it and checks the sum at the end.
type etagReader struct {
	r          io.Reader
	h          hash.Hash
	name, want string
}

func (e *etagReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(e.h.Sum(nil)); got != e.want {
			return n, fmt.Errorf("get %s: %w: its ETag is %s, the bytes read hash to %s", e.name, ErrObjectChanged, e.want, got)
		}
	}
	return n, err
}

// Exists reports whether key is in the bucket.
func (b *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	_, err := b.client.StatObject(ctx, b.name, key, minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	if err = mapMinIOError(err); IsNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("stat %s/%s: %w", b.name, key, err)
}

// Put writes an object with its content type and user metadata.
func (b *Bucket) Put(ctx context.Context, o BucketObject, r io.Reader) error {
	_, err := b.client.PutObject(ctx, b.name, o.Key, contextReader{ctx: ctx, r: r}, o.Size, minio.PutObjectOptions{
		ContentType: o.ContentType, UserMetadata: o.UserMetadata, PartSize: DefaultPartSize,
	})
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", b.name, o.Key, mapMinIOError(err))
	}
	return nil
}
