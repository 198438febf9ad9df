package tasks

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

func TestPermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("backup x: %w", engine.ErrInvalid), true},
		{fmt.Errorf("backup x: %w", engine.ErrExists), true},
		{fmt.Errorf("restore: %w", engine.ErrNotFound), true},
		{fmt.Errorf("restore: %w", engine.ErrChecksumMismatch), true},
		{fmt.Errorf("x: %w", pgtool.ErrNoMatchingClient), true},
		{fmt.Errorf("x: %w", ErrCancelled), true},
		{fmt.Errorf("minio put: %w", store.ErrUnavailable), false},
		{fmt.Errorf("connect: %w", pgtool.ErrUnreachable), false},
		{fmt.Errorf("reserve: %w", ErrBusy), false},
		{errors.New("pg_dump: exit status 1"), false},
		{fmt.Errorf("restore: %w", engine.ErrNotEmpty), true},
		{fmt.Errorf("restore: %w", &pgtool.ToolError{Tool: "pg_restore", Err: errors.New("exit status 1"), Kind: pgtool.ErrObjectExists}), true},
		{fmt.Errorf("restore: %w", &pgtool.ToolError{Tool: "pg_restore", Err: errors.New("exit status 1")}), false},
	}
	for _, tt := range tests {
		if got := Permanent(tt.err); got != tt.want {
			t.Errorf("Permanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestTaskConstructorsSetExplicitOptions(t *testing.T) {
	env := testbench.Require(t)
	redisOpt := asynq.RedisClientOpt{Addr: env.RedisAddr, DB: 14}
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	o := Options{MaxRetry: 3, Retention: 48 * time.Hour, BackupTimeout: 5 * time.Hour, RestoreTimeout: 4 * time.Hour, DeleteTimeout: time.Minute}
	cases := []struct {
		task    func() (*asynq.Task, error)
		queue   string
		timeout time.Duration
	}{
		{func() (*asynq.Task, error) { return NewTask(BackupPayload{BackupName: "a"}, o) }, QueueBackup, 5 * time.Hour},
		{func() (*asynq.Task, error) { return NewTask(RestorePayload{BackupName: "a"}, o) }, QueueRestore, 4 * time.Hour},
		{func() (*asynq.Task, error) { return NewTask(DeletePayload{BackupName: "a"}, o) }, QueueMaintenance, time.Minute},
		{func() (*asynq.Task, error) { return NewTask(VerifyPayload{BackupName: "a"}, o) }, QueueMaintenance, 5 * time.Hour},
		{func() (*asynq.Task, error) { return NewTask(BaseBackupPayload{Target: "a"}, o) }, QueueBackup, 5 * time.Hour},
	}
	for _, c := range cases {
		task, err := c.task()
		if err != nil {
			t.Fatal(err)
		}
		info, err := client.Enqueue(task, asynq.ProcessIn(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if info.Queue != c.queue || info.Timeout != c.timeout || info.MaxRetry != 3 || info.Retention != 48*time.Hour {
			t.Errorf("%s: queue %s timeout %s max retry %d retention %s; want %s, %s, 3, 48h",
				task.Type(), info.Queue, info.Timeout, info.MaxRetry, info.Retention, c.queue, c.timeout)
		}
	}
	insp := asynq.NewInspector(redisOpt)
	defer insp.Close()
	for _, q := range AllQueues {
		_ = insp.DeleteQueue(q, true)
	}
}

func TestEveryPayloadMakesATaskOfItsType(t *testing.T) {
	t.Parallel()
	want := []string{TypeAlertDeliver, TypeBackupAdopt, TypeBaseBackup, TypeBackupCreate, TypeBackupDelete, TypeBackupDrill, TypeBackupPrune, TypeBackupRestore, TypeBackupVerify,
		TypeBucketBackup, TypeBucketRestore}
	if got := Types(); !slices.Equal(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	for _, p := range []Payload{BackupPayload{}, RestorePayload{}, DeletePayload{}, VerifyPayload{}, PrunePayload{}, DrillPayload{},
		BucketBackupPayload{}, BucketRestorePayload{}, AdoptPayload{}, BaseBackupPayload{}} {
		task, err := NewTask(p, Options{})
		if err != nil || task.Type() != p.TaskType() {
			t.Errorf("NewTask(%T) = %v, %v", p, task, err)
		}
	}
}

func TestTheErrorTableClassifiesAndSplits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err   error
		class string
	}{
		{fmt.Errorf("x: %w", ErrCancelled), "cancelled"},
		{fmt.Errorf("x: %w", engine.ErrUnreadable), "invalid archive"},
		{fmt.Errorf("x: %w", &BusyError{Scope: ScopeName, Key: "b", Holder: "t"}), "waiting for another task"},
		{errors.New("pg_dump: exit status 1"), "task failed"},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.class {
			t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.class)
		}
		class, detail := SplitTaskError(Classify(tt.err) + ": " + tt.err.Error())
		if class != tt.class || detail != tt.err.Error() {
			t.Errorf("SplitTaskError of %v = %q, %q", tt.err, class, detail)
		}
	}
	if c, d := SplitTaskError("asynq: task lease expired"); c != "task failed" || d != "asynq: task lease expired" {
		t.Errorf("SplitTaskError of an unclassified text = %q, %q", c, d)
	}
}
