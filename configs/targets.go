package configs

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
)

// TargetConfig is one entry of BACKUP_TARGETS, as written in the YAML file
// or the JSON list. Retention may be given as a "retention" object or as
// keep_* keys on the target itself.
type TargetConfig struct {
	Name          string           `json:"name" yaml:"name"`
	Database      string           `json:"database" yaml:"database"`
	Schedule      string           `json:"schedule" yaml:"schedule"`
	Format        string           `json:"format" yaml:"format"`
	Retention     policy.Retention `json:"retention" yaml:"retention"`
	KeepLast      int              `json:"keep_last" yaml:"keep_last"`
	KeepDaily     int              `json:"keep_daily" yaml:"keep_daily"`
	KeepWeekly    int              `json:"keep_weekly" yaml:"keep_weekly"`
	KeepMonthly   int              `json:"keep_monthly" yaml:"keep_monthly"`
	RPO           string           `json:"rpo" yaml:"rpo"`
	DrillSchedule string           `json:"drill_schedule" yaml:"drill_schedule"`
	Stores        []string         `json:"stores" yaml:"stores"`
	// IncludeGlobals stores pg_dumpall --globals-only with every backup.
	IncludeGlobals bool `json:"include_globals" yaml:"include_globals"`
	// Kind "bucket" backs up a MinIO bucket (Bucket, Prefix) instead of a
	// database.
	Kind   string `json:"kind" yaml:"kind"`
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
}

// server builds the target's own server, nil when it names none.
func (tc TargetConfig) server(c Config) (*pgtool.Conn, error) {
	if tc.Host == "" && tc.Port == 0 && tc.User == "" && tc.PasswordFile == "" && tc.SSLMode == "" && tc.SSLRootCert == "" {
		return nil, nil
	}
	s := &pgtool.Conn{Host: tc.Host, Port: tc.Port, User: tc.User, SSLMode: tc.SSLMode, SSLRootCert: tc.SSLRootCert}
	if s.Host == "" {
		s.Host = c.PostgresHost
	}
	if s.Port == 0 {
		s.Port = c.PostgresPort
	}
	if s.Port < 1 || s.Port > 65535 {
		return nil, fmt.Errorf("port %d: want 1 to 65535", s.Port)
	}
	if s.User == "" {
		s.User = c.PostgresUser
	}
	if s.SSLMode == "" {
		s.SSLMode = c.PostgresSSLMode
	}
	if !validSSLMode(s.SSLMode) {
		return nil, fmt.Errorf("sslmode %q is not a libpq sslmode", s.SSLMode)
	}
	if s.SSLRootCert == "" {
		s.SSLRootCert = c.PostgresSSLRootCert
	}
	if tc.PasswordFile != "" {
		b, err := os.ReadFile(tc.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password_file: %w", err)
		}
		s.Password = strings.TrimRight(string(b), "\r\n")
	}
	return s, nil
}

// Targets builds the configured targets, or the default one. Scheduling
// is off for all of them while BACKUP_ENABLED is false.
func (c Config) Targets() ([]policy.Target, error) {
	if len(c.BackupTargets) == 0 {
		t := policy.Target{Name: policy.DefaultTarget, Database: c.PostgresDB, Format: engine.FormatCustom}
		if c.BackupEnabled {
			s, err := c.defaultSchedule()
			if err != nil {
				return nil, err
			}
			t.Schedule = &s
		}
		return []policy.Target{t}, nil
	}
	var out []policy.Target
	for i, tc := range c.BackupTargets {
		t, err := tc.build(c)
		if err != nil {
			name := tc.Name
			if name == "" {
				name = fmt.Sprintf("#%d", i+1)
			}
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
		out = append(out, t)
	}
	if _, err := policy.NewTargetSet(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c Config) defaultSchedule() (policy.Schedule, error) {
	if c.BackupSchedule != "" {
		return policy.ParseSchedule(c.BackupSchedule)
	}
	return policy.IntervalSchedule(c.BackupIntervalHours)
}

func (tc TargetConfig) build(c Config) (policy.Target, error) {
	t := policy.Target{Name: strings.TrimSpace(tc.Name), Database: strings.TrimSpace(tc.Database), Stores: tc.Stores,
		IncludeGlobals: tc.IncludeGlobals}
	if !policy.ValidTargetName(t.Name) {
		return t, fmt.Errorf("name %q: use lower-case letters, digits and _, starting with a letter, at most 30", tc.Name)
	}
	server, err := tc.server(c)
	if err != nil {
		return t, err
	}
	t.Server = server
	switch tc.Kind {
	case "", "database":
	case policy.SourceBucket:
		t.Source, t.Bucket, t.Prefix = policy.SourceBucket, tc.Bucket, tc.Prefix
		if tc.Bucket == c.MinIOBucket {
			if endpoint, _, _ := c.SourceMinIO(); endpoint == c.MinIOEndpoint {
				return t, fmt.Errorf("bucket %s holds the backups themselves", tc.Bucket)
			}
		}
	default:
		return t, fmt.Errorf("kind %q: want database or bucket", tc.Kind)
	}
	if t.Database == "" {
		t.Database = c.PostgresDB
	}
	// "*" backs up the whole server, every database that accepts connections.
	if t.Database != engine.AllDatabases && !pgtool.ValidIdentifier(t.Database) {
		return t, fmt.Errorf("database %q is not a valid database name, nor * for every database", t.Database)
	}
	f, err := engine.ParseFormat(tc.Format)
	if err != nil {
		return t, err
	}
	t.Format = f
	if tc.Schedule != "" && c.BackupEnabled {
		s, err := policy.ParseSchedule(tc.Schedule)
		if err != nil {
			return t, err
		}
		t.Schedule = &s
	}
	if tc.DrillSchedule != "" {
		s, err := policy.ParseSchedule(tc.DrillSchedule)
		if err != nil {
			return t, fmt.Errorf("drill_schedule: %w", err)
		}
		t.DrillSchedule = &s
	}
	t.Retention = tc.Retention
	for _, kv := range []struct {
		flat int
		dst  *int
	}{{tc.KeepLast, &t.Retention.KeepLast}, {tc.KeepDaily, &t.Retention.KeepDaily},
		{tc.KeepWeekly, &t.Retention.KeepWeekly}, {tc.KeepMonthly, &t.Retention.KeepMonthly}} {
		if kv.flat != 0 {
			*kv.dst = kv.flat
		}
	}
	if tc.RPO != "" {
		d, err := time.ParseDuration(tc.RPO)
		if err != nil || d <= 0 {
			return t, fmt.Errorf("rpo %q: want a positive duration such as 26h", tc.RPO)
		}
		t.RPO = d
	}
	return t, t.Validate()
}
