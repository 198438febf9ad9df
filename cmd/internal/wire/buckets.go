package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/worker"
	"github.com/autograph/pgbackup/store"
)

// buckets opens the buckets of the source S3 server for bucket tasks,
// refusing those BUCKET_ALLOWLIST does not name and the store's own.
type buckets struct {
	endpoint, user, password string
	rule                     bucketRule
	tls                      *tls.Config
}

// bucketRule decides which buckets bucket tasks may read and write.
type bucketRule struct {
	// protected is the backup store's own bucket when the source server is
	// the store's: backing it up, or restoring over it, is refused.
	protected string
	// allow are BUCKET_ALLOWLIST's patterns; empty allows every other bucket.
	allow []string
}

// bucketRuleOf is the rule the settings give.
func bucketRuleOf(cfg configs.Config) bucketRule {
	return bucketRule{protected: ProtectedBucket(cfg), allow: cfg.BucketPatterns()}
}

// check refuses a bucket bucket tasks may not use, with an
// engine.ErrBucketRefused naming the reason and the setting.
func (r bucketRule) check(bucket string) error {
	if r.protected != "" && strings.EqualFold(bucket, r.protected) {
		return fmt.Errorf("%w: bucket %s holds the backups themselves (MINIO_BUCKET)", engine.ErrBucketRefused, bucket)
	}
	if len(r.allow) == 0 {
		return nil
	}
	b := strings.ToLower(bucket)
	for _, p := range r.allow {
		p = strings.ToLower(p)
		if prefix, wild := strings.CutSuffix(p, "*"); (wild && strings.HasPrefix(b, prefix)) || (!wild && b == p) {
			return nil
		}
	}
	return fmt.Errorf("%w: bucket %s is not in BUCKET_ALLOWLIST", engine.ErrBucketRefused, bucket)
}

// Buckets is the bucket access of the API and workers (nil without any
// MinIO). Without BUCKET_ALLOWLIST it warns: every bucket of the source
// server but the store's own may then be read and overwritten.
func Buckets(setup *Setup, log *logrus.Entry) worker.Buckets {
	cfg := setup.Config
	endpoint, user, password := cfg.SourceMinIO()
	if endpoint == "" {
		return nil
	}
	b := &buckets{endpoint: endpoint, user: user, password: password, rule: bucketRuleOf(cfg), tls: setup.MinIOTLS}
	if len(b.rule.allow) == 0 {
		log.Warn("BUCKET_ALLOWLIST is not set: bucket backups may read, and bucket restores overwrite, every bucket of the source MinIO but the backups' own; set it to the buckets they are for")
	}
	return b
}

// ProtectedBucket is the backup store's own bucket when bucket tasks reach
// the store's server, "" otherwise. The endpoints are compared normalised
// (see endpointID), so another spelling of the same address is caught; a
// different host name for the same server is not, which BUCKET_ALLOWLIST
// covers.
func ProtectedBucket(cfg configs.Config) string {
	if cfg.MinIOEndpoint == "" {
		return ""
	}
	if endpoint, _, _ := cfg.SourceMinIO(); endpointID(endpoint) == endpointID(cfg.MinIOEndpoint) {
		return cfg.MinIOBucket
	}
	return ""
}

// endpointID is an S3 endpoint URL reduced to what names the server:
// host (lower case, without a final dot; localhost and loopback addresses
// as one) and port (the scheme's default when absent). Scheme case, path
// and trailing slash do not matter, nor the scheme itself once the port is
// known: one port serves one protocol.
func endpointID(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return strings.ToLower(strings.TrimRight(strings.TrimSpace(raw), "/"))
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		host = "loopback"
	}
	return net.JoinHostPort(host, port)
}

func (b *buckets) config(bucket string) store.MinIOConfig {
	return store.MinIOConfig{Endpoint: b.endpoint, AccessKey: b.user, SecretKey: b.password, Bucket: bucket, TLS: b.tls}
}

func (b *buckets) Check(bucket string) error { return b.rule.check(bucket) }

func (b *buckets) Source(ctx context.Context, bucket string) (*store.Bucket, error) {
	if err := b.rule.check(bucket); err != nil {
		return nil, err
	}
	bk, err := store.OpenBucket(ctx, b.config(bucket))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: bucket %s does not exist", engine.ErrNotFound, bucket)
	}
	return bk, err
}

func (b *buckets) Destination(ctx context.Context, bucket string) (*store.Bucket, error) {
	if err := b.rule.check(bucket); err != nil {
		return nil, err
	}
	return store.OpenOrCreateBucket(ctx, b.config(bucket))
}
