package engine

// WithoutPlainScan turns off the plain-archive scanner of e, so that a
// test can show psql's restricted mode refusing a planted meta-command on
// its own.
func WithoutPlainScan(e *Engine) { e.noPlainScan = true }
