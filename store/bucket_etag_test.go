package store

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
)

// TestCheckETag: a read whose bytes do not hash to the plain-MD5 ETag its
// GET announced fails at its end with ErrObjectChanged; multipart and
// server-side encrypted ETags, which are not the content's MD5, pass as
// they are.
func TestCheckETag(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("version one "), 1000)
	sum := md5.Sum(body)
	good := hex.EncodeToString(sum[:])
	other := md5.Sum([]byte("version two"))
	sse := http.Header{}
	sse.Set("X-Amz-Server-Side-Encryption", "aws:kms")
	for _, tc := range []struct {
		name    string
		etag    string
		meta    http.Header
		changed bool
	}{
		{"the version announced", good, nil, false},
		{"upper-case hex", strings.ToUpper(good), nil, false},
		{"another version's MD5", hex.EncodeToString(other[:]), nil, true},
		{"multipart, not checked", hex.EncodeToString(other[:]) + "-3", nil, false},
		{"encrypted, not checked", hex.EncodeToString(other[:]), sse, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := checkETag(bytes.NewReader(body), "b/k", minio.ObjectInfo{ETag: tc.etag, Metadata: tc.meta})
			got, err := io.ReadAll(r)
			if changed := errors.Is(err, ErrObjectChanged); changed != tc.changed || (!tc.changed && err != nil) {
				t.Fatalf("read = %v, want changed %v", err, tc.changed)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("read %d bytes, want all %d", len(got), len(body))
			}
		})
	}
}
