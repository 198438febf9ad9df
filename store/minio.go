package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"syscall"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIO part sizing. minio-go buffers whole parts in memory and an object may
// have at most 10,000 parts, so PartSize bounds both memory
// (PartSize × UploadThreads per upload) and the largest archive
// (10,000 × PartSize: 156 GiB at the default 16 MiB).
const (
	DefaultPartSize      = 16 << 20
	MinPartSize          = 5 << 20
	DefaultUploadThreads = 4
)

// MinIOConfig says where and how to reach the bucket.
type MinIOConfig struct {
	// Endpoint is a URL such as http://127.0.0.1:9000; https enables TLS.
	Endpoint  string
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string
	// PartSize of multipart uploads in bytes; DefaultPartSize when zero.
	PartSize uint64
	// UploadThreads is how many parts are in flight at once, so reading the
	// next part from pg_dump overlaps with sending the previous one.
	UploadThreads uint
	// TLS is the client TLS configuration for an https endpoint (a
	// private CA); nil uses the system's CAs.
	TLS *tls.Config
}

// MinIO stores objects in an S3-compatible bucket.
type MinIO struct {
	client  *minio.Client
	bucket  string
	part    uint64
	threads uint
}

var _ Store = (*MinIO)(nil)

// NewMinIOClient returns the SDK client for cfg's endpoint and credentials,
// for tools (the benchmark) that need minio-go itself; the store uses it too.
func NewMinIOClient(cfg MinIOConfig) (*minio.Client, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("minio store: endpoint %q must be a URL such as http://host:9000", cfg.Endpoint)
	}
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: u.Scheme == "https",
		Region: cfg.Region,
	}
	if cfg.TLS != nil && opts.Secure {
		tr, err := minio.DefaultTransport(true)
		if err != nil {
			return nil, fmt.Errorf("minio store %s: %w", u.Host, err)
		}
		tr.TLSClientConfig = cfg.TLS
		opts.Transport = tr
	}
	client, err := minio.New(u.Host, opts)
	if err != nil {
		return nil, fmt.Errorf("minio store %s: %w", u.Host, err)
	}
	return client, nil
}

// NewMinIO connects to the endpoint and creates the bucket when it is missing.
func NewMinIO(ctx context.Context, cfg MinIOConfig) (*MinIO, error) {
	client, err := NewMinIOClient(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("minio store: empty bucket name")
	}
	part := cfg.PartSize
	if part == 0 {
		part = DefaultPartSize
	}
	if part < MinPartSize {
		return nil, fmt.Errorf("minio store: part size %d is below the S3 minimum of %d", part, MinPartSize)
	}
	threads := cfg.UploadThreads
	if threads == 0 {
		threads = DefaultUploadThreads
	}
	m := &MinIO{client: client, bucket: cfg.Bucket, part: part, threads: threads}
	if err := m.ensureBucket(ctx, cfg.Region); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *MinIO) ensureBucket(ctx context.Context, region string) error {
	ok, err := m.client.BucketExists(ctx, m.bucket)
	if err != nil {
		return fmt.Errorf("minio store: bucket %s: %w", m.bucket, mapMinIOError(err))
	}
	if ok {
		return nil
	}
	err = m.client.MakeBucket(ctx, m.bucket, minio.MakeBucketOptions{Region: region})
	if err != nil {
		// Another process may have created it between the two calls.
		code := minio.ToErrorResponse(err).Code
		if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return nil
		}
		return fmt.Errorf("minio store: create bucket %s: %w", m.bucket, mapMinIOError(err))
	}
	return nil
}

// Name implements Store.
func (m *MinIO) Name() string { return MinIOName }

// Bucket returns the bucket name.
func (m *MinIO) Bucket() string { return m.bucket }

// Put implements Store. A stream is uploaded as a multipart stream of
// unknown length with a fixed part size, so memory stays at
// PartSize × UploadThreads whatever the archive size. S3 publishes a
// multipart object only on CompleteMultipartUpload; minio-go aborts the
// upload when the reader fails or ctx ends, so nothing partial is visible.
func (m *MinIO) Put(ctx context.Context, key string, r io.Reader, meta map[string]string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("minio put: %w", err)
	}
	// A reader that knows its length and fits in one part (a WAL chunk,
	// a manifest) goes up as one PUT of that length: no part buffers
	// (PartSize × UploadThreads allocated for every object, which made the
	// archiver's memory grow with each small WAL object) and no multipart
	// round trips on the path of every WAL chunk.
	size := int64(-1)
	if l, ok := r.(interface{ Len() int }); ok && uint64(l.Len()) < m.part {
		size = int64(l.Len())
	}
	if size < 0 {
		// A worker killed during an earlier attempt leaves its parts
		// behind; clear them so retries do not accumulate invisible
		// storage.
		_ = m.client.RemoveIncompleteUpload(ctx, m.bucket, key)
	}
	opts := minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: meta,
		PartSize:     m.part,
	}
	if m.threads > 1 && size < 0 {
		opts.NumThreads = m.threads
		opts.ConcurrentStreamParts = true
	}
	if _, err := m.client.PutObject(ctx, m.bucket, key, contextReader{ctx: ctx, r: r}, size, opts); err != nil {
		return fmt.Errorf("minio put %s: %w", key, mapMinIOError(err))
	}
	return nil
}

// Get implements Store. minio-go opens objects lazily, so Stat is called
// first: a missing key is reported here rather than on the first Read.
func (m *MinIO) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("minio get: %w", err)
	}
	obj, err := m.client.GetObject(ctx, m.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("minio get %s: %w", key, mapMinIOError(err))
	}
	if _, err := obj.Stat(); err != nil {
		_ = obj.Close()
		return nil, fmt.Errorf("minio get %s: %w", key, mapMinIOError(err))
	}
	return obj, nil
}

// Stat implements Store.
func (m *MinIO) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("minio stat: %w", err)
	}
	oi, err := m.client.StatObject(ctx, m.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("minio stat %s: %w", key, mapMinIOError(err))
	}
	return ObjectInfo{Key: key, Size: oi.Size, LastModified: oi.LastModified, Metadata: userMetadata(oi), ETag: oi.ETag}, nil
}

// List implements Store.
func (m *MinIO) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	for oi := range m.client.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("minio list %q: %w", prefix, mapMinIOError(oi.Err))
		}
		out = append(out, ObjectInfo{Key: oi.Key, Size: oi.Size, LastModified: oi.LastModified, ETag: oi.ETag})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store. S3 deletes are silent for missing keys, so the
// key is checked first to keep the contract's ErrNotFound.
func (m *MinIO) Delete(ctx context.Context, key string) error {
	if _, err := m.Stat(ctx, key); err != nil {
		return fmt.Errorf("minio delete: %w", err)
	}
	if err := m.client.RemoveObject(ctx, m.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("minio delete %s: %w", key, mapMinIOError(err))
	}
	return nil
}

// IncompleteUploads lists keys under prefix with multipart uploads that were
// started but never completed or aborted.
func (m *MinIO) IncompleteUploads(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for u := range m.client.ListIncompleteUploads(ctx, m.bucket, prefix, true) {
		if u.Err != nil {
			return nil, fmt.Errorf("minio list uploads %q: %w", prefix, mapMinIOError(u.Err))
		}
		keys = append(keys, u.Key)
	}
	return keys, nil
}

func userMetadata(oi minio.ObjectInfo) map[string]string {
	if len(oi.UserMetadata) == 0 {
		return nil
	}
	out := make(map[string]string, len(oi.UserMetadata))
	for k, v := range oi.UserMetadata {
		out[strings.ToLower(k)] = v
	}
	return out
}

// mapMinIOError hides the SDK's error types behind the package sentinels.
func mapMinIOError(err error) error {
	if err == nil {
		return nil
	}
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NoSuchBucket", "NotFound":
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if isUnreachable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// isUnreachable reports network-level failures, where the server never
// answered, as opposed to an S3 error response.
func isUnreachable(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return true
	}
	var uerr *url.Error
	return errors.As(err, &uerr)
}
