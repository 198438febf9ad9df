package engine

// WithoutPlainScan turns off the plain-archive scanner of e, so that a
// test can show psql's restricted mode refusing a planted meta-command on
// its own.
func WithoutPlainScan(e *Engine) { e.noPlainScan = true }

// ServerArchiveKey is where a whole-server backup keeps db's archive
// (no codec, not encrypted), for tests that forge one.
func ServerArchiveKey(name Name, db string, f Format) string {
	return serverArchiveKey(name, db, f, Codec{}, false)
}
