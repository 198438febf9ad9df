package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/internal/testbench/procfs"
)

// waitGone waits until none of pids is alive.
func waitGone(t *testing.T, pids []int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		left := 0
		for _, p := range pids {
			if procfs.Alive(p) {
				left++
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("processes %v still alive %s later", pids, timeout)
}

// waitChildren waits until ppid has a child named comm.
func waitChildren(t *testing.T, ppid int, comm string, timeout time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if pids := procfs.ChildrenNamed(ppid, comm); len(pids) > 0 {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s child of %d within %s", comm, ppid, timeout)
	return nil
}

// assertNoSecretInCmdlines reads every process's argument list, as ps
// shows them to any user on the machine.
func assertNoSecretInCmdlines(t *testing.T, secrets ...string) {
	t.Helper()
	for _, pid := range procfs.Pids() {
		b, err := procfs.Cmdline(pid)
		if err != nil {
			continue
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("a secret is visible in the argument list of pid %d: %q", pid, strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
	}
}

// assertNoSecretInRedis reads every key of one Redis database: task
// payloads, results and asynq's bookkeeping.
func assertNoSecretInRedis(t *testing.T, addr string, db int, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer rdb.Close()
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	n := 0
	for iter.Next(ctx) {
		key := iter.Val()
		n++
		var blob []byte
		switch rdb.Type(ctx, key).Val() {
		case "string":
			blob = []byte(rdb.Get(ctx, key).Val())
		case "hash":
			for k, v := range rdb.HGetAll(ctx, key).Val() {
				blob = append(append(blob, k...), v...)
			}
		case "list":
			blob = []byte(strings.Join(rdb.LRange(ctx, key, 0, -1).Val(), "\n"))
		case "set":
			blob = []byte(strings.Join(rdb.SMembers(ctx, key).Val(), "\n"))
		case "zset":
			blob = []byte(strings.Join(rdb.ZRange(ctx, key, 0, -1).Val(), "\n"))
		}
		for _, s := range secrets {
			if bytes.Contains(blob, []byte(s)) || strings.Contains(key, s) {
				t.Errorf("a secret is stored in Redis under %s", key)
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("Redis database is empty: the secret scan checked nothing")
	}
}
