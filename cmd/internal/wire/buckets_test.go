package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/engine"
)

// TestStoreBucketIsRecognisedWhateverTheSpelling: the backups' own bucket
// is refused when the source endpoint is the store's written another way.
func TestStoreBucketIsRecognisedWhateverTheSpelling(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		store, source string
		same          bool
	}{
		{"http://127.0.0.1:9000", "http://localhost:9000", true},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000/", true},
		{"http://minio.internal", "http://minio.internal:80", true},
		{"https://minio.internal:443", "HTTPS://MinIO.Internal/", true},
		{"http://minio.internal.:9000", "http://minio.internal:9000", true},
		{"http://[::1]:9000", "http://localhost:9000", true},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9001", false},
		{"http://minio-a:9000", "http://minio-b:9000", false},
		{"http://minio.internal", "https://minio.internal", false},
	} {
		cfg := configs.Defaults()
		cfg.MinIOEndpoint, cfg.SourceMinIOEndpoint, cfg.MinIOBucket = tt.store, tt.source, "backups"
		err := bucketRuleOf(cfg).check("Backups")
		if refused := errors.Is(err, engine.ErrBucketRefused); refused != tt.same {
			t.Errorf("store %s, source %s: check(backups) = %v; want refused %v", tt.store, tt.source, err, tt.same)
		}
	}
}

// TestBucketAllowlist: only the buckets BUCKET_ALLOWLIST names (exactly or
// by prefix) pass, and the backups' own bucket never does.
func TestBucketAllowlist(t *testing.T) {
	t.Parallel()
	r := bucketRule{protected: "backups", allow: []string{"files-*", "photos", "backups"}}
	for bucket, ok := range map[string]bool{
		"files-2026": true, "files-": true, "photos": true, "Photos": true,
		"photos-old": false, "files": false, "other": false, "backups": false,
	} {
		err := r.check(bucket)
		if (err == nil) != ok {
			t.Errorf("check(%s) = %v, want allowed %v", bucket, err, ok)
		}
		if err != nil && (!errors.Is(err, engine.ErrBucketRefused) || !errors.Is(err, engine.ErrInvalid)) {
			t.Errorf("check(%s) = %v, want an ErrBucketRefused (an ErrInvalid)", bucket, err)
		}
		if err != nil && bucket != "backups" && !strings.Contains(err.Error(), "BUCKET_ALLOWLIST") {
			t.Errorf("check(%s) = %v, want it to name BUCKET_ALLOWLIST", bucket, err)
		}
	}
	if err := (bucketRule{protected: "backups"}).check("anything"); err != nil {
		t.Errorf("no allowlist: check(anything) = %v, want allowed", err)
	}
}

// TestNoAllowlistWarns: with a source MinIO and no BUCKET_ALLOWLIST the
// programs that use buckets warn at start, naming the setting; with one
// they do not.
func TestNoAllowlistWarns(t *testing.T) {
	t.Parallel()
	minio := []string{"MINIO_ENDPOINT=http://127.0.0.1:1", "MINIO_ROOT_USER=u", "MINIO_ROOT_PASSWORD=p"}
	for _, tt := range []struct {
		env  []string
		warn bool
	}{{minio, true}, {append(minio, "BUCKET_ALLOWLIST=uploads"), false}} {
		var buf bytes.Buffer
		l := logrus.New()
		l.SetOutput(&buf)
		if b := Buckets(mustLoad(t, tt.env...), logrus.NewEntry(l)); b == nil {
			t.Fatal("no bucket access with MINIO_ENDPOINT")
		}
		if got := strings.Contains(buf.String(), "BUCKET_ALLOWLIST is not set"); got != tt.warn {
			t.Errorf("%v: warned %v (%q), want %v", tt.env, got, buf.String(), tt.warn)
		}
	}
	if b := Buckets(mustLoad(t), logrus.NewEntry(logrus.New())); b != nil {
		t.Error("bucket access without any MinIO")
	}
}
