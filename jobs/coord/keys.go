package coord

// Every Redis key of ours is built here, one function or constant per key,
// so that their names and their Redis Cluster slots can be read in one
// place. asynq keeps its own keys ("asynq:{<queue>}:..."); ours all start
// with "pgbackup:". The strings are deployed data: never change one.
//
// Hash tags. In a Redis Cluster a command, MULTI/EXEC or script that names
// several keys must find them all in one slot (else CROSSSLOT). A key's
// slot is the hash of the part inside its first {...} when it has one.
// Only the name marks need a tag: NameIndex.Taken reads both marks of a
// name with one MGET, and MarkCreated/MarkDeleted set one and delete the
// other in one transaction; without the shared {name} every create failed
// on a cluster. The archiver's lease and fence of a target
// share {target}: taking the lease draws the next fencing token in the
// same script. Every other key is used alone, or in a pipeline whose
// commands need not be atomic together (go-redis's cluster client splits
// a pipeline per slot).

const (
	// keyBackupCounters is a hash of backups_total by "target|outcome".
	keyBackupCounters = "pgbackup:backups_total"
	// keyDrills is a sorted set of drill results (JSON) scored by time.
	keyDrills = "pgbackup:drills"
	// keySigningKeyFingerprint is the fingerprint of the manifest signing
	// key the deployment's programs use.
	keySigningKeyFingerprint = "pgbackup:signing-key-fingerprint"
	// keyAudit is a bounded list of recent admin actions (JSON).
	keyAudit = "pgbackup:audit"
	// keyReplicationFence is written only so that WAIT has a write of its
	// own to wait for (see ReplicatedQueue).
	keyReplicationFence = "pgbackup:replication-fence"
)

// targetKey is a hash of what is known of a configured target: its newest
// good backup, its last drill, when it was first watched, and the wal_*
// fields the archiver publishes for a pitr target (WALStatus).
func targetKey(target string) string { return "pgbackup:target:" + target }

// rpoKey is a target's RPO state, "ok" or "breached".
func rpoKey(target string) string { return "pgbackup:rpo:" + target }

// reservationKey holds the ID of the task holding a reservation of scope
// (tasks.ScopeName, tasks.ScopeRestore) on key.
func reservationKey(scope, key string) string { return "pgbackup:reserve:" + scope + ":" + key }

// cancelKey marks a cancelled task.
func cancelKey(taskID string) string { return "pgbackup:cancel:" + taskID }

// createdKey and deletedKey mark a backup name just created or deleted, for
// the API's name indexes. The name in braces is the hash tag (see above):
// both marks of one name are in one slot.
func createdKey(name string) string { return "pgbackup:created:{" + name + "}" }
func deletedKey(name string) string { return "pgbackup:deleted:{" + name + "}" }

// idempotencyKey holds the first response to a request made with this
// Idempotency-Key (already scoped by the API to the caller).
func idempotencyKey(key string) string { return "pgbackup:idem:" + key }

// archiverLeaseKey holds "<token> <owner>" of the archiver streaming a
// target's server's WAL, with the lease's TTL; archiverFenceKey is the
// target's fencing-token counter (never expires, only grows). The {target}
// hash tag puts both in one slot (see above).
func archiverLeaseKey(target string) string { return "pgbackup:archiver-lease:{" + target + "}" }
func archiverFenceKey(target string) string { return "pgbackup:archiver-fence:{" + target + "}" }
