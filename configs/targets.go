package configs

// TargetConfig is one entry of BACKUP_TARGETS, as written in the YAML file
// or the JSON list. Retention may be given as a "retention" object or as
// keep_* keys on the target itself. It is data only: wiring checks it and
// builds the target (cmd/internal/wire).
type TargetConfig struct {
	Name          string    `json:"name" yaml:"name"`
	Database      string    `json:"database" yaml:"database"`
	Schedule      string    `json:"schedule" yaml:"schedule"`
	Format        string    `json:"format" yaml:"format"`
	Retention     Retention `json:"retention" yaml:"retention"`
	KeepLast      int       `json:"keep_last" yaml:"keep_last"`
	KeepDaily     int       `json:"keep_daily" yaml:"keep_daily"`
	KeepWeekly    int       `json:"keep_weekly" yaml:"keep_weekly"`
	KeepMonthly   int       `json:"keep_monthly" yaml:"keep_monthly"`
	RPO           string    `json:"rpo" yaml:"rpo"`
	DrillSchedule string    `json:"drill_schedule" yaml:"drill_schedule"`
	Stores        []string  `json:"stores" yaml:"stores"`
	// IncludeGlobals stores pg_dumpall --globals-only with every backup.
	IncludeGlobals bool `json:"include_globals" yaml:"include_globals"`
	// Source is what the target backs up, written "kind" by users:
	// "database" (the default) or "bucket", a MinIO bucket (Bucket,
	// Prefix).
	Source string `json:"kind" yaml:"kind"`
	Bucket string `json:"bucket" yaml:"bucket"`
	Prefix string `json:"prefix" yaml:"prefix"`
	// A target on a server of its own: any of these set makes one, the
	// others default to POSTGRES_*. The password is read from a file, and
	// only from it: POSTGRES_PASSWORD is never sent to another server.
	Host         string `json:"host" yaml:"host"`
	Port         int    `json:"port" yaml:"port"`
	User         string `json:"user" yaml:"user"`
	PasswordFile string `json:"password_file" yaml:"password_file"`
	SSLMode      string `json:"sslmode" yaml:"sslmode"`
	SSLRootCert  string `json:"sslrootcert" yaml:"sslrootcert"`
	// PITR archives the target's server's WAL continuously (the archiver
	// program, issue #21). Targets on one server share one archive.
	PITR bool `json:"pitr" yaml:"pitr"`
	// PITRWindow is how far back point-in-time recovery must reach: days
	// ("7d") or a Go duration.
	PITRWindow string `json:"pitr_window" yaml:"pitr_window"`
	// AllowUnlimitedSlot accepts a server whose max_slot_wal_keep_size is
	// -1 (a dead archiver then fills the server's disk).
	AllowUnlimitedSlot bool `json:"allow_unlimited_slot" yaml:"allow_unlimited_slot"`
	// Sync confirms WAL to the server only once stored, for
	// synchronous_standby_names (RPO 0).
	Sync bool `json:"sync" yaml:"sync"`
	// BaseBackupSchedule is when a pitr target's base backups run (a
	// schedule as for Schedule, or "off"); empty: daily.
	BaseBackupSchedule string `json:"base_backup_schedule" yaml:"base_backup_schedule"`
}

// Retention is a target's "retention" object: how many scheduled backups
// to keep, as the prune policy counts them. It mirrors jobs.Retention
// field for field (configs imports no jobs package); wiring converts one
// to the other, so the compiler catches a field added to only one.
type Retention struct {
	KeepLast    int `json:"keep_last" yaml:"keep_last"`
	KeepDaily   int `json:"keep_daily" yaml:"keep_daily"`
	KeepWeekly  int `json:"keep_weekly" yaml:"keep_weekly"`
	KeepMonthly int `json:"keep_monthly" yaml:"keep_monthly"`
}

// OwnServer reports whether the target names a PostgreSQL server of its
// own rather than the POSTGRES_* one.
func (tc TargetConfig) OwnServer() bool {
	return tc.Host != "" || tc.Port != 0 || tc.User != "" || tc.PasswordFile != "" || tc.SSLMode != "" || tc.SSLRootCert != ""
}

// KeepCounts is the retention with the flat keep_* keys, where set, over
// the "retention" object's.
func (tc TargetConfig) KeepCounts() Retention {
	r := tc.Retention
	for _, kv := range []struct {
		flat int
		dst  *int
	}{{tc.KeepLast, &r.KeepLast}, {tc.KeepDaily, &r.KeepDaily},
		{tc.KeepWeekly, &r.KeepWeekly}, {tc.KeepMonthly, &r.KeepMonthly}} {
		if kv.flat != 0 {
			*kv.dst = kv.flat
		}
	}
	return r
}

// ValidSSLMode reports whether m is one of libpq's sslmode values.
func ValidSSLMode(m string) bool {
	switch m {
	case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
		return true
	}
	return false
}
