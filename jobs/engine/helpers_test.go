package engine_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"

	"github.com/autograph/pgbackup/jobs/engine"
)

func readAll(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	return io.ReadAll(rc)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// matchArchive makes a manifest entry (the manifest itself, a database of
// a whole-server backup, or its globals) describe body, stored without a
// codec, as an attacker who rewrites both would: size, checksum, and the
// chunk sums and raw size the restore checks first.
func matchArchive(entry map[string]any, body []byte) {
	entry["size_bytes"], entry["sha256"] = len(body), sha(body)
	size := int(engine.DefaultChunkSize)
	var sums []string
	for off := 0; off < len(body); off += size {
		sums = append(sums, sha(body[off:min(off+size, len(body))]))
	}
	entry["chunk_size"], entry["chunk_sha256"], entry["raw_size_bytes"] = size, sums, len(body)
}
