package policy

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
)

// DefaultTarget is the target built from the single-database settings when
// no targets are configured; its scheduled backups keep the old names.
const DefaultTarget = "default"

// Target is a database backed up on its own schedule, with its own
// retention, recovery point objective and restore drills.
type Target struct {
	Name     string
	Database string
	// Schedule is nil when the target has no scheduled backups.
	Schedule  *Schedule
	Format    engine.Format
	Retention Retention
	// RPO is the longest acceptable age of the newest good backup; zero
	// means the age is not watched.
	RPO time.Duration
	// DrillSchedule is nil when no drills are scheduled.
	DrillSchedule *Schedule
	// PITR is set on a target whose server's WAL is archived
	// continuously: only such a target takes base backups.
	PITR bool
	// BaseBackupSchedule is when the scheduler takes the target's base
	// backups; nil when it takes none. Only a PITR target has one.
	BaseBackupSchedule *Schedule
	// Stores to write to; empty means every configured store.
	Stores []string
	// IncludeGlobals stores the server's roles with every backup.
	IncludeGlobals bool
	// Source is what the target backs up: SourceDatabase, or SourceBucket
	// for a MinIO bucket (Bucket, Prefix). Its values are the settings'
	// "kind" values.
	Source string
	Bucket string
	Prefix string
	// AdoptedRetention lets retention prune the target's adopted backups
	// (ADOPTED_RETENTION); without it they are never pruned.
	AdoptedRetention bool
	// Server is the PostgreSQL server of a target that names its own
	// (host, port, user, password_file, sslmode); nil means the
	// configured POSTGRES_* server.
	Server *pgtool.Conn
}

// What a target backs up (Target.Source).
const (
	// SourceDatabase is a PostgreSQL database (the default, the empty value).
	SourceDatabase = ""
	// SourceBucket is a MinIO bucket.
	SourceBucket = "bucket"
)

// ErrUnknownTarget means a task or request names a target that is not
// configured.
var ErrUnknownTarget = fmt.Errorf("%w: unknown target", engine.ErrInvalid)

var targetNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,29}$`)

// ValidTargetName reports whether s can name a target: lower-case letters,
// digits and '_', starting with a letter, at most 30 characters, so that
// backup names and drill database names built from it stay valid.
func ValidTargetName(s string) bool { return targetNameRe.MatchString(s) }

// Validate checks what the target's parts cannot check alone.
func (t Target) Validate() error {
	if !ValidTargetName(t.Name) {
		return fmt.Errorf("target name %q: use lower-case letters, digits and _, starting with a letter, at most 30", t.Name)
	}
	if err := t.Retention.Validate(); err != nil {
		return fmt.Errorf("target %s: %w", t.Name, err)
	}
	if t.RPO < 0 {
		return fmt.Errorf("target %s: rpo must not be negative", t.Name)
	}
	if t.Source == SourceBucket && (t.Bucket == "" || t.DrillSchedule != nil || t.IncludeGlobals) {
		return fmt.Errorf("target %s: a bucket target needs a bucket, and has no drills or globals", t.Name)
	}
	if t.BaseBackupSchedule != nil && !t.PITR {
		return fmt.Errorf("target %s: base_backup_schedule needs pitr: true", t.Name)
	}
	return nil
}

// ScheduledPrefix starts the names of the target's scheduled backups:
// autograph_scheduled_ for the default target (the old service's names),
// <target>_scheduled_ for the others.
func (t Target) ScheduledPrefix() string {
	if t.Name == DefaultTarget {
		return ScheduledPrefix
	}
	return t.Name + "_scheduled_"
}

// SlotName is the name of the target's scheduled backup for the slot
// containing at.
func (t Target) SlotName(at time.Time) string {
	return t.ScheduledPrefix() + t.Schedule.SlotStart(at).UTC().Format("20060102_150405")
}

// DrillTaskID names the drill of the slot containing at, so that several
// schedulers enqueue it once.
func (t Target) DrillTaskID(at time.Time) string {
	return "drill_" + t.Name + "_" + t.DrillSchedule.SlotStart(at).UTC().Format("20060102_150405")
}

// BaseBackupTaskID names the scheduled base backup of the slot containing
// at: its backup name (BaseBackupName of the slot's start), so that
// several schedulers enqueue it once and the worker names the backup
// after its task.
func (t Target) BaseBackupTaskID(at time.Time) string {
	return BaseBackupName(t.Name, t.BaseBackupSchedule.SlotStart(at))
}

// Owns reports whether a backup belongs to the target, and whether it is
// one of its scheduled backups. Manifests written before targets existed
// name no target; the default target owns those whose names it would have
// given them.
//
// Base backups are never a target's in this sense (see OwnsBase): the
// dumps' retention, drills and RPO leave them to the pitr_window.
func (t Target) Owns(m *engine.Manifest) (owned, scheduled bool) {
	if m.Content == engine.ContentBase {
		return false, false
	}
	if m.Target != "" {
		return m.Target == t.Name, m.Target == t.Name && m.Scheduled
	}
	if t.Name == DefaultTarget && strings.HasPrefix(m.Name.String(), ScheduledPrefix) {
		return true, true
	}
	return false, false
}

// OwnsBase reports whether m is one of the target's base backups.
func (t Target) OwnsBase(m *engine.Manifest) bool {
	return m.Content == engine.ContentBase && m.Target == t.Name
}

// BaseBackupName names the target's base backup taken (or, scheduled, of
// the slot starting) at at: <target>_base_YYYYMMDD_HHMMSS.
func BaseBackupName(target string, at time.Time) string {
	return target + "_base_" + at.UTC().Format("20060102_150405")
}

// TargetSet is the configured targets by name, in configuration order.
type TargetSet struct {
	list []Target
}

// NewTargetSet checks the targets and their names' uniqueness.
func NewTargetSet(targets []Target) (*TargetSet, error) {
	seen := map[string]bool{}
	for _, t := range targets {
		if err := t.Validate(); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("target %s is configured twice", t.Name)
		}
		seen[t.Name] = true
	}
	return &TargetSet{list: targets}, nil
}

// All returns the targets in configuration order.
func (s *TargetSet) All() []Target {
	if s == nil {
		return nil
	}
	return s.list
}

// Get returns the named target.
func (s *TargetSet) Get(name string) (Target, bool) {
	for _, t := range s.All() {
		if t.Name == name {
			return t, true
		}
	}
	return Target{}, false
}

// OfDatabase is the first database target (in configuration order) that
// backs up db, "" when none does.
func (s *TargetSet) OfDatabase(db string) string {
	for _, t := range s.All() {
		if t.Source == SourceDatabase && t.Database == db {
			return t.Name
		}
	}
	return ""
}
