package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// childrenNamed returns the pids of live processes named comm whose parent
// is ppid.
func childrenNamed(ppid int, comm string) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < 0 || s[open+1:close] != comm {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if p, _ := strconv.Atoi(f[1]); p == ppid {
			pid, _ := strconv.Atoi(filepath.Base(d))
			out = append(out, pid)
		}
	}
	return out
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// waitGone waits until none of pids is alive.
func waitGone(t *testing.T, pids []int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		left := 0
		for _, p := range pids {
			if alive(p) {
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
		if pids := childrenNamed(ppid, comm); len(pids) > 0 {
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
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("a secret is visible in the argument list of pid %s: %q", filepath.Base(d), strings.ReplaceAll(string(b), "\x00", " "))
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
