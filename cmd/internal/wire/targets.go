package wire

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
)

// buildTargets builds BACKUP_TARGETS, or the default target from the
// single-database settings, checking each: every target's error is
// reported, not only the first. Scheduling is off for all of them while
// BACKUP_ENABLED is false.
func (s *Setup) buildTargets() error {
	c := s.Config
	sched, schedErr := defaultSchedule(c)
	if len(c.BackupTargets) == 0 {
		t := policy.Target{Name: policy.DefaultTarget, Database: c.PostgresDB, Format: engine.FormatCustom}
		if c.BackupEnabled {
			t.Schedule = sched
		}
		return errors.Join(schedErr, s.setTargets([]policy.Target{t}))
	}
	var list []policy.Target
	errs := []error{schedErr}
	// A base backup copies the whole server, which every pitr target on it
	// shares (one WAL archive per server), so only the first pitr target
	// of each server takes the daily default; the others take base backups
	// only when they ask for a schedule.
	pitrServers := map[string]bool{}
	for i, tc := range c.BackupTargets {
		t, err := buildTarget(c, tc, s.program.readsTargetPasswords())
		if err != nil {
			label := tc.Name
			if label == "" {
				label = fmt.Sprintf("#%d", i+1)
			}
			errs = append(errs, configs.Bad("BACKUP_TARGETS", "target %s: %w", label, err))
			continue
		}
		if t.PITR {
			conn := Conn(c)
			if t.Server != nil {
				conn = *t.Server
			}
			key := net.JoinHostPort(conn.Host, strconv.Itoa(conn.Port))
			if pitrServers[key] && strings.TrimSpace(tc.BaseBackupSchedule) == "" {
				t.BaseBackupSchedule = nil
			}
			pitrServers[key] = true
		}
		list = append(list, t)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.setTargets(list)
}

func (s *Setup) setTargets(list []policy.Target) error {
	for i := range list {
		list[i].AdoptedRetention = s.Config.AdoptedRetention
	}
	set, err := policy.NewTargetSet(list)
	if err != nil {
		return configs.Bad("BACKUP_TARGETS", "%w", err)
	}
	s.Targets = set
	return nil
}

// defaultSchedule is BACKUP_SCHEDULE when set, else BACKUP_INTERVAL_HOURS;
// nil when neither gives one (BACKUP_SCHEDULE is checked even then).
func defaultSchedule(c configs.Config) (*policy.Schedule, error) {
	if c.BackupSchedule != "" {
		s, err := policy.ParseSchedule(c.BackupSchedule)
		if err != nil {
			return nil, configs.Bad("BACKUP_SCHEDULE", "%v", err)
		}
		return &s, nil
	}
	// Below one hour configs.Validate already names BACKUP_INTERVAL_HOURS
	// when it matters (BACKUP_ENABLED), and no schedule is built.
	if c.BackupIntervalHours < 1 {
		return nil, nil
	}
	s, err := policy.IntervalSchedule(c.BackupIntervalHours)
	if err != nil {
		return nil, configs.Bad("BACKUP_INTERVAL_HOURS", "%v", err)
	}
	return &s, nil
}

// buildTarget checks one entry of BACKUP_TARGETS and builds its target,
// reading its password_file only when passwords is set; errors name the
// entry's key, the caller adds the target and setting.
func buildTarget(c configs.Config, tc configs.TargetConfig, passwords bool) (policy.Target, error) {
	t := policy.Target{Name: strings.TrimSpace(tc.Name), Database: strings.TrimSpace(tc.Database), Stores: tc.Stores,
		IncludeGlobals: tc.IncludeGlobals, Retention: policy.Retention(tc.KeepCounts()), PITR: tc.PITR}
	if !policy.ValidTargetName(t.Name) {
		return t, fmt.Errorf("name %q: use lower-case letters, digits and _, starting with a letter, at most 30", tc.Name)
	}
	server, err := targetServer(c, tc, passwords)
	if err != nil {
		return t, err
	}
	t.Server = server
	if err := setSource(c, tc, &t); err != nil {
		return t, err
	}
	if err := setSchedules(c, tc, &t); err != nil {
		return t, err
	}
	if tc.RPO != "" {
		d, err := configs.ParseDuration(tc.RPO)
		if err != nil || d <= 0 {
			return t, fmt.Errorf("rpo %q: want a positive duration such as 26h or 2d", tc.RPO)
		}
		t.RPO = d
	}
	return t, t.Validate()
}

// setSource sets what the target backs up: a database (the default), or
// a bucket of the source MinIO; and the archive format.
func setSource(c configs.Config, tc configs.TargetConfig, t *policy.Target) error {
	switch tc.Source {
	case "", "database":
	case policy.SourceBucket:
		t.Source, t.Bucket, t.Prefix = policy.SourceBucket, tc.Bucket, tc.Prefix
		if err := bucketRuleOf(c).check(tc.Bucket); err != nil {
			return err
		}
	default:
		return fmt.Errorf("kind %q: want database or bucket", tc.Source)
	}
	if t.Database == "" {
		t.Database = c.PostgresDB
	}
	// "*" backs up the whole server, every database that accepts connections.
	if _, _, err := engine.ParseBackupDatabase(t.Database); err != nil {
		return fmt.Errorf("database %q is not a valid database name, nor * for every database", t.Database)
	}
	f, err := engine.ParseFormat(tc.Format)
	if err != nil {
		return err
	}
	t.Format = f
	return nil
}

func setSchedules(c configs.Config, tc configs.TargetConfig, t *policy.Target) error {
	if tc.Schedule != "" && c.BackupEnabled {
		s, err := policy.ParseSchedule(tc.Schedule)
		if err != nil {
			return err
		}
		t.Schedule = &s
	}
	if tc.DrillSchedule != "" {
		s, err := policy.ParseSchedule(tc.DrillSchedule)
		if err != nil {
			return fmt.Errorf("drill_schedule: %w", err)
		}
		t.DrillSchedule = &s
	}
	return setBaseBackupSchedule(c, tc, t)
}

// DefaultBaseBackupSchedule is a pitr target's base_backup_schedule when
// it sets none: daily, at midnight UTC.
const DefaultBaseBackupSchedule = "@daily"

// setBaseBackupSchedule sets a pitr target's base backup schedule:
// base_backup_schedule, daily when unset, none when "off". Like backups,
// base backups are scheduled only while BACKUP_ENABLED is true (the
// setting is checked even then). A target without pitr has no WAL to
// replay on a base backup, so the setting is refused there.
func setBaseBackupSchedule(c configs.Config, tc configs.TargetConfig, t *policy.Target) error {
	spec := strings.TrimSpace(tc.BaseBackupSchedule)
	if !tc.PITR {
		if spec != "" {
			return errors.New("base_backup_schedule needs pitr: true")
		}
		return nil
	}
	switch spec {
	case "off":
		return nil
	case "":
		spec = DefaultBaseBackupSchedule
	}
	s, err := policy.ParseSchedule(spec)
	if err != nil {
		return fmt.Errorf("base_backup_schedule: %w", err)
	}
	if c.BackupEnabled {
		t.BaseBackupSchedule = &s
	}
	return nil
}

// targetServer is the target's own server, nil when it names none. Its
// password is read here, once, from password_file, by the programs that
// connect to it (passwords); the others leave it empty.
func targetServer(c configs.Config, tc configs.TargetConfig, passwords bool) (*pgtool.Conn, error) {
	if !tc.OwnServer() {
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
	if !configs.ValidSSLMode(s.SSLMode) {
		return nil, fmt.Errorf("sslmode %q is not a libpq sslmode", s.SSLMode)
	}
	if s.SSLRootCert == "" {
		s.SSLRootCert = c.PostgresSSLRootCert
	}
	if tc.PasswordFile != "" && passwords {
		b, err := os.ReadFile(tc.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password_file: %w", err)
		}
		s.Password = strings.TrimRight(string(b), "\r\n")
	}
	return s, nil
}
