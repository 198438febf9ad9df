package tasks

// BackupPayload is the payload of TypeBackupCreate.
type BackupPayload struct {
	// BackupName is empty for scheduled backups: the worker takes the name
	// from the task ID, which the scheduler derives from the schedule slot.
	BackupName string   `json:"backup_name,omitempty"`
	Format     string   `json:"format"`
	Database   string   `json:"database,omitempty"`
	Stores     []string `json:"stores"`
	Scheduled  bool     `json:"scheduled,omitempty"`
	// Target is the configured target the backup is for (scheduled
	// backups always name one).
	Target string `json:"target,omitempty"`
	// IncludeGlobals also stores pg_dumpall --globals-only beside it.
	IncludeGlobals bool `json:"include_globals,omitempty"`
}

// TaskType implements Payload.
func (BackupPayload) TaskType() string { return TypeBackupCreate }

// Reservations implements Reserver: the backup's name.
func (p BackupPayload) Reservations() []Reservation {
	return []Reservation{{ScopeName, p.BackupName}}
}

// RestorePayload is the payload of TypeBackupRestore.
type RestorePayload struct {
	BackupName string `json:"backup_name"`
	// From names the store to read; empty means the first holding it.
	From string `json:"from,omitempty"`
	// TargetDatabase is the database restored into (the JSON name users
	// send); empty means the one the backup was taken from.
	TargetDatabase string `json:"target_database,omitempty"`
	Clean          bool   `json:"clean,omitempty"`
	Replace        bool   `json:"replace,omitempty"`
	AllowUnsigned  bool   `json:"allow_unsigned,omitempty"`
	RestoreGlobals bool   `json:"restore_globals,omitempty"`
	// Databases chooses databases of a whole-server backup (all when
	// empty); each is restored under its own name.
	Databases []string `json:"databases,omitempty"`
	// Target is the configured target whose server is restored into (its
	// database by default). Without it a backup goes back to the server it
	// was taken from: its target's, if that target names its own server.
	Target string `json:"target,omitempty"`
}

// TaskType implements Payload.
func (RestorePayload) TaskType() string { return TypeBackupRestore }

// Reservations implements Reserver: every database restored into.
func (p RestorePayload) Reservations() []Reservation {
	if len(p.Databases) > 0 {
		res := make([]Reservation, 0, len(p.Databases))
		for _, d := range p.Databases {
			res = append(res, Reservation{ScopeRestore, RestoreKey(p.Target, d)})
		}
		return res
	}
	return []Reservation{{ScopeRestore, RestoreKey(p.Target, p.TargetDatabase)}}
}

// DeletePayload is the payload of TypeBackupDelete.
type DeletePayload struct {
	BackupName string   `json:"backup_name"`
	Stores     []string `json:"stores"`
}

// TaskType implements Payload.
func (DeletePayload) TaskType() string { return TypeBackupDelete }

// VerifyPayload is the payload of TypeBackupVerify.
type VerifyPayload struct {
	BackupName    string `json:"backup_name"`
	From          string `json:"from,omitempty"`
	AllowUnsigned bool   `json:"allow_unsigned,omitempty"`
}

// TaskType implements Payload.
func (VerifyPayload) TaskType() string { return TypeBackupVerify }

// PrunePayload is the payload of TypeBackupPrune.
type PrunePayload struct {
	Target string `json:"target"`
}

// TaskType implements Payload.
func (PrunePayload) TaskType() string { return TypeBackupPrune }

// DrillPayload is the payload of TypeBackupDrill.
type DrillPayload struct {
	Target string `json:"target"`
	// BackupName is filled in by the worker (the target's newest good
	// backup) before the drill runs, so that pruning sees it in use.
	BackupName string `json:"backup_name,omitempty"`
}

// TaskType implements Payload.
func (DrillPayload) TaskType() string { return TypeBackupDrill }

// BucketBackupPayload is the payload of TypeBucketBackup.
type BucketBackupPayload struct {
	BackupName string   `json:"backup_name"`
	Bucket     string   `json:"bucket"`
	Prefix     string   `json:"prefix,omitempty"`
	Stores     []string `json:"stores,omitempty"`
	// Target and Scheduled as for database backups: scheduled bucket
	// backups of a target are named after their slot and pruned.
	Target    string `json:"target,omitempty"`
	Scheduled bool   `json:"scheduled,omitempty"`
}

// TaskType implements Payload.
func (BucketBackupPayload) TaskType() string { return TypeBucketBackup }

// Reservations implements Reserver: the backup's name.
func (p BucketBackupPayload) Reservations() []Reservation {
	return []Reservation{{ScopeName, p.BackupName}}
}

// BucketRestorePayload is the payload of TypeBucketRestore.
type BucketRestorePayload struct {
	BackupName   string `json:"backup_name"`
	From         string `json:"from,omitempty"`
	TargetBucket string `json:"target_bucket"`
	Overwrite    bool   `json:"overwrite,omitempty"`
}

// TaskType implements Payload.
func (BucketRestorePayload) TaskType() string { return TypeBucketRestore }

// AdoptPayload is the payload of TypeBackupAdopt.
type AdoptPayload struct {
	// DryRun lists what would be adopted and skipped, and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Plan is the dry run's plan digest: the adoption applies exactly the
	// list that dry run showed, or fails (required unless DryRun).
	Plan string `json:"plan,omitempty"`
}

// TaskType implements Payload.
func (AdoptPayload) TaskType() string { return TypeBackupAdopt }

// BaseBackupPayload is the payload of TypeBaseBackup: a base backup of the
// server of a target with pitr (its WAL archive's server), stored in that
// archive's stores.
type BaseBackupPayload struct {
	Target string `json:"target"`
	// BackupName is filled in by the worker when empty
	// (policy.BaseBackupName of the task's start, or of the slot for
	// scheduled ones, whose task ID is that name).
	BackupName string `json:"backup_name,omitempty"`
	Scheduled  bool   `json:"scheduled,omitempty"`
}

// TaskType implements Payload.
func (BaseBackupPayload) TaskType() string { return TypeBaseBackup }

// Reservations implements Reserver: the backup's name.
func (p BaseBackupPayload) Reservations() []Reservation {
	return []Reservation{{ScopeName, p.BackupName}}
}
