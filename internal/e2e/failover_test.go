package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
)

// redisProc is a redis-server (or sentinel) of a test, in the foreground
// so that the test can kill it.
type redisProc struct {
	port int
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (r *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// startRedisProc starts redis-server with args on a free loopback port
// and waits until it answers PING. A port taken between choosing and
// binding is retried on another.
func startRedisProc(t *testing.T, dir, name string, args func(port int) []string) *redisProc {
	t.Helper()
	return startRedisProcTLS(t, dir, name, nil, args)
}

// startRedisProcTLS is startRedisProc for a server that speaks TLS only:
// its readiness PING goes over tlsCfg.
func startRedisProcTLS(t *testing.T, dir, name string, tlsCfg *tls.Config, args func(port int) []string) *redisProc {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		r := &redisProc{port: port, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
		logf, err := os.Create(r.log)
		if err != nil {
			t.Fatal(err)
		}
		r.cmd = exec.Command("redis-server", args(port)...)
		r.cmd.Dir = dir
		r.cmd.Stdout, r.cmd.Stderr = logf, logf
		if err := r.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		go func() { r.cmd.Wait(); logf.Close(); close(r.done) }()
		t.Cleanup(func() { r.kill() })
		rdb := redis.NewClient(&redis.Options{Addr: r.addr(), TLSConfig: tlsCfg})
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-r.done:
				deadline = time.Time{}
				continue
			default:
			}
			if rdb.Ping(context.Background()).Err() == nil {
				rdb.Close()
				return r
			}
			time.Sleep(50 * time.Millisecond)
		}
		rdb.Close()
		r.kill()
		b, _ := os.ReadFile(r.log)
		if !strings.Contains(string(b), "Address already in use") {
			t.Fatalf("%s did not start:\n%s", name, tail(string(b), 2000))
		}
	}
	t.Fatalf("%s: no free port after 5 attempts", name)
	return nil
}

func (r *redisProc) kill() {
	if r.cmd.Process != nil {
		r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.done
	}
}

// redisHA is a master, a replica and three sentinels on loopback.
type redisHA struct {
	master, replica *redisProc
	sentinels       []*redisProc
	name            string
}

func (h *redisHA) sentinelAddrs() string {
	var a []string
	for _, s := range h.sentinels {
		a = append(a, s.addr())
	}
	return strings.Join(a, ",")
}

// masterPort asks a sentinel which port it considers the master's.
func (h *redisHA) masterPort(ctx context.Context) (int, error) {
	for _, s := range h.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
		addr, err := sc.GetMasterAddrByName(ctx, h.name).Result()
		sc.Close()
		if err == nil && len(addr) == 2 {
			return strconv.Atoi(addr[1])
		}
	}
	return 0, fmt.Errorf("no sentinel answered")
}

func startRedisHA(t *testing.T) *redisHA {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	dir := t.TempDir()
	base := func(port int, sub string) []string {
		d := filepath.Join(dir, sub)
		os.MkdirAll(d, 0o755)
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", d, "--databases", "128", "--maxmemory-policy", "noeviction"}
	}
	h := &redisHA{name: "pgbackup-ha"}
	h.master = startRedisProc(t, dir, "master", func(p int) []string { return base(p, "master") })
	h.replica = startRedisProc(t, dir, "replica", func(p int) []string {
		return append(base(p, "replica"), "--replicaof", "127.0.0.1", strconv.Itoa(h.master.port))
	})
	for i := range 3 {
		name := fmt.Sprintf("sentinel%d", i)
		h.sentinels = append(h.sentinels, startRedisProc(t, dir, name, func(p int) []string {
			conf := filepath.Join(dir, name+".conf")
			// Quick detection so the test's failover takes seconds; a
			// production sentinel would use its defaults (30 s). Not
			// quicker than 3 s: /readyz tries Redis for up to 2 s (with
			// go-redis's retries), and with a 1 s detection a promotion
			// could land inside one /readyz call, which then answered 200
			// and the outage was never seen.
			os.WriteFile(conf, fmt.Appendf(nil, "port %d\nbind 127.0.0.1\ndir %s\n"+
				"sentinel monitor %s 127.0.0.1 %d 2\n"+
				"sentinel down-after-milliseconds %s 3000\n"+
				"sentinel failover-timeout %s 10000\n"+
				"sentinel parallel-syncs %s 1\n",
				p, dir, h.name, h.master.port, h.name, h.name, h.name), 0o644)
			return []string{conf, "--sentinel"}
		}))
	}
	// Wait until the replica is in sync and every sentinel knows the
	// replica and the two other sentinels: before that a failover has no
	// quorum or nobody to promote.
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		rc := redis.NewClient(&redis.Options{Addr: h.replica.addr()})
		info, _ := rc.Info(ctx, "replication").Result()
		rc.Close()
		ready = strings.Contains(info, "master_link_status:up")
		for _, s := range h.sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
			reps, _ := sc.Replicas(ctx, h.name).Result()
			sens, _ := sc.Sentinels(ctx, h.name).Result()
			sc.Close()
			ready = ready && len(reps) == 1 && len(sens) == 2
		}
		if ready {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis replica and sentinels not ready within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRedisSentinelFailover queues backups through the API, kills the
// Redis master while two of them are provably running, and checks that a
// sentinel's promotion of the replica is followed by API and workers
// without a restart. The programs get the sentinels only: their
// REDIS_ADDR is a trap that fails and counts any fallback. It asserts
// that /readyz answers 503 during the failover and 200 after it; that
// the queue's keys are on the promoted replica, read there directly; and
// that every backup accepted before and after ran exactly once, counted
// from the workers' "task started" lines.
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	h := startRedisHA(t)
	c := newCluster(t)
	trap := c.onlyRedis("REDIS_SENTINEL_ADDRS="+h.sentinelAddrs(), "REDIS_SENTINEL_MASTER="+h.name,
		// A 202 means a replica holds the task, so the failover cannot lose it.
		"REDIS_WAIT_REPLICAS=1", "REDIS_WAIT_TIMEOUT=1s")
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (id int PRIMARY KEY, v text)`,
		`INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	c.startAPI()
	workers := []*harness.Proc{c.start("worker-a", "worker"), c.start("worker-b", "worker")}

	// Each worker's pg_dump waits on this lock until the failover is over:
	// two backups are running when the master dies, and no worker is free
	// to take a task from the queue at that moment.
	lock := lockTable(t, c.env.PGURL(c.source), "t")
	const before, after = 10, 3
	tasks := map[string]string{} // backup name -> task id
	create := func(name string) {
		tasks[name] = c.create(client.CreateBackupRequest{BackupName: name}).TaskID
	}
	for i := range before {
		create(fmt.Sprintf("ha-before-%02d", i))
	}
	running := waitDumps(t, c.env.PGURL("postgres"), c.source, len(workers), time.Minute)
	for _, id := range []string{tasks["ha-before-00"], tasks["ha-before-01"]} {
		if st := must(c.viewer().Task(t.Context(), id))(t); st.State != client.StateActive {
			t.Fatalf("task %s is %s while pg_dump sessions %v wait, want active", id, st.State, running)
		}
	}
	// Whatever the workers wrote so far (taking the two tasks) is on the
	// replica before the kill: WAIT for a write of ours that follows it.
	waitReplicated(t, h.master.addr(), c.redisDB)
	oldPort := h.master.port
	killed := time.Now()
	h.master.kill()
	saw503 := watchFailover(t, c, h, killed, func() {
		// An enqueue while Redis has no master: refused with 503, or
		// accepted if the promotion came first (then it must run too).
		var r client.Response
		a, err := c.admin().CreateBackup(t.Context(), client.CreateBackupRequest{BackupName: "ha-during"}, client.WithResponse(&r))
		switch r.StatusCode {
		case http.StatusServiceUnavailable:
		case http.StatusAccepted:
			tasks["ha-during"] = a.TaskID
		default:
			t.Errorf("create during the failover = %d (%v), want 503 or 202", r.StatusCode, err)
		}
	})
	if !saw503 {
		t.Errorf("/readyz never answered 503 while the master (port %d) was dead and not yet replaced", oldPort)
	}
	lock.release()

	for i := range after {
		create(fmt.Sprintf("ha-after-%02d", i))
	}
	var ids []string
	for name, id := range tasks {
		ids = append(ids, id)
		st := c.waitTask(id, 3*time.Minute)
		if len(st.Result) == 0 || string(st.Result) == "null" {
			t.Errorf("%s: completed without a result", name)
		}
	}
	t.Logf("all %d backups completed %.1f s after the kill", len(tasks), time.Since(killed).Seconds())
	checkRanOnce(t, ids, workers...)
	checkTasksOn(t, h.replica.addr(), c.redisDB, tasks)
	trap.check(t)
	checkStoredOnce(t, c, tasks)
}

// waitReplicated writes a key on the master and waits until one replica
// acknowledges it: every write before it is then on that replica too.
func waitReplicated(t *testing.T, master string, db int) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: master, DB: db})
	defer rc.Close()
	ctx := t.Context()
	if err := rc.Set(ctx, "e2e:replication-fence", time.Now().String(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT 1 on the master: %d replicas, %v", n, err)
	}
}

// watchFailover polls /readyz after the master was killed until the
// sentinels name the replica and the API answers 200, and then for a
// second more (nothing was restarted, it must stay 200). It calls
// during once, at the first 503, and reports whether it saw one.
func watchFailover(t *testing.T, c *cluster, h *redisHA, killed time.Time, during func()) (saw503 bool) {
	t.Helper()
	ctx := context.Background()
	anon := c.api("")
	var recovered time.Duration
	for recovered == 0 {
		var r client.Response
		_, err := anon.Readyz(ctx, client.WithResponse(&r))
		code := r.StatusCode // 0 without an answer
		port, perr := h.masterPort(ctx)
		promoted := perr == nil && port == h.replica.port
		switch {
		case code == http.StatusServiceUnavailable:
			if !saw503 {
				saw503 = true
				during()
			}
		case code == http.StatusOK && promoted:
			recovered = time.Since(killed)
		case code != http.StatusOK:
			t.Fatalf("/readyz = %d (%v) during the failover, want 200 or 503", code, err)
		}
		if time.Since(killed) > time.Minute {
			t.Fatalf("no recovery a minute after the master was killed (sentinels name port %d; readyz %d)", port, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("failover: /readyz 200 against the promoted replica %.1f s after the master was killed (saw 503 in between: %v)",
		recovered.Seconds(), saw503)
	for range 10 {
		if _, err := anon.Readyz(ctx); err != nil {
			t.Fatalf("/readyz = %v after the failover", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return saw503
}

// checkTasksOn reads the queue's keys directly on addr, which must now be
// a master: each task's asynq hash (asynq:{<queue>}:t:<id>) is there and
// completed. The service's own account could come from anywhere; this is
// the server itself.
func checkTasksOn(t *testing.T, addr string, db int, tasks map[string]string) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer rc.Close()
	ctx := t.Context()
	info, err := rc.Info(ctx, "replication").Result()
	if err != nil || !strings.Contains(info, "role:master") {
		t.Fatalf("promoted replica %s: not a master (%v):\n%s", addr, err, info)
	}
	for name, id := range tasks {
		state, err := rc.HGet(ctx, "asynq:{backup}:t:"+id, "state").Result()
		if err != nil || state != "completed" {
			t.Errorf("%s: task %s on the promoted replica: state %q, %v; want completed", name, id, state, err)
		}
	}
}

// checkStoredOnce checks what the backups left in MinIO: each name listed
// once, one archive and one manifest per name, and each archive's bytes
// matching the checksum its manifest records.
func checkStoredOnce(t *testing.T, c *cluster, tasks map[string]string) {
	t.Helper()
	ctx := t.Context()
	list := c.listBackups()
	if len(list) != len(tasks) {
		t.Errorf("listed %d backups, want %d", len(list), len(tasks))
	}
	m := c.minio()
	objs, err := m.List(ctx, "postgres/")
	if err != nil {
		t.Fatal(err)
	}
	perName := map[string]int{}
	for _, o := range objs {
		// postgres/<name>.dump.zst and postgres/<name>.manifest.json; the
		// test's names hold no dot.
		name, _, _ := strings.Cut(strings.TrimPrefix(o.Key, "postgres/"), ".")
		perName[name]++
	}
	for name := range tasks {
		b, ok := list[name]
		if !ok {
			t.Errorf("%s: not listed", name)
			continue
		}
		if perName[name] != 2 {
			t.Errorf("%s: %d objects in MinIO, want the archive and its manifest", name, perName[name])
		}
		r, err := m.Get(ctx, b.ArchiveKey)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		hsum := sha256.New()
		io.Copy(hsum, r)
		r.Close()
		if got := hex.EncodeToString(hsum.Sum(nil)); got != b.SHA256 {
			t.Errorf("%s: archive sha256 %s, manifest says %v", name, got, b.SHA256)
		}
	}
	if len(perName) != len(tasks) {
		t.Errorf("MinIO holds %d backup names, want %d: %v", len(perName), len(tasks), perName)
	}
}

// startRedisCluster starts three master nodes and joins them into a Redis
// Cluster with redis-cli, waiting until every node says the cluster is ok.
func startRedisCluster(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not installed")
	}
	dir := t.TempDir()
	var addrs []string
	for i := range 3 {
		sub := filepath.Join(dir, fmt.Sprintf("node%d", i))
		os.MkdirAll(sub, 0o755)
		n := startRedisProc(t, dir, fmt.Sprintf("node%d", i), func(p int) []string {
			return []string{"--port", strconv.Itoa(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--dir", sub, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "2000"}
		})
		addrs = append(addrs, n.addr())
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		rc := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, _ := rc.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok on %s:\n%s", a, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
		rc.Close()
	}
	return addrs
}

// TestRedisCluster runs the service on a Redis Cluster of three masters:
// a backup, the 409 on its name, the listing, a restore and a delete, and
// asynqmon's queue view. The programs get the cluster's nodes only (their
// REDIS_ADDR is a trap); the test then reads every node directly: the
// queue's and the service's keys are spread over the masters, each task's
// hash on the one node that owns its slot, and each task ran once.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := startRedisCluster(t)
	c := newCluster(t)
	trap := c.onlyRedis("REDIS_CLUSTER_ADDRS="+strings.Join(addrs, ","), "REDIS_DB=0")
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (id int PRIMARY KEY)`, `INSERT INTO t SELECT generate_series(1, 500)`)
	want := c.env.Fingerprint(t, c.source)
	c.startAPI()
	w := c.start("worker", "worker")

	tasks := map[string]string{}
	out := c.create(client.CreateBackupRequest{BackupName: "on-cluster"})
	tasks["backup"] = out.TaskID
	c.waitTask(out.TaskID, 2*time.Minute)
	if _, err := c.admin().CreateBackup(t.Context(), client.CreateBackupRequest{BackupName: "on-cluster"}); client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("same name again on a cluster: %v, want 409", err)
	}
	if _, ok := c.listBackups()["on-cluster"]; !ok {
		t.Fatal("backup not listed")
	}
	target := c.source + "_cl"
	c.env.DropDBOnCleanup(t, target)
	out = c.restore(client.RestoreBackupRequest{BackupName: "on-cluster", TargetDatabase: target})
	tasks["restore"] = out.TaskID
	c.waitTask(out.TaskID, 2*time.Minute)
	if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, target), want); diff != "" {
		t.Fatalf("restore on a cluster: %s", diff)
	}
	out = c.remove("on-cluster")
	tasks["delete"] = out.TaskID
	c.waitTask(out.TaskID, 2*time.Minute)
	if _, ok := c.listBackups()["on-cluster"]; ok {
		t.Fatal("deleted backup still listed")
	}

	// asynqmon's own API, as a browser sends it: Basic auth.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminToken))
	code, _, body := c.raw(http.MethodGet, "/monitoring/api/queues", "", map[string]string{"Authorization": basic}, nil)
	t.Logf("asynqmon on a cluster: GET /monitoring/api/queues = %d %s", code, tail(string(body), 300))
	if code != http.StatusOK || !strings.Contains(string(body), "backup") {
		t.Errorf("asynqmon's queue view on a cluster = %d %s", code, tail(string(body), 300))
	}
	// Our own keys too: nothing may have failed for keys in different slots.
	for _, p := range c.progs.Procs() {
		if l := logText(t, p); strings.Contains(l, "CROSSSLOT") {
			t.Errorf("%s logged a cross-slot error on the cluster:\n%s", p.Name, tail(l, 2000))
		}
	}
	checkRanOnce(t, []string{tasks["backup"], tasks["restore"], tasks["delete"]}, w)
	checkClusterKeys(t, addrs, tasks)
	trap.check(t)
}

// checkClusterKeys reads each node of the cluster directly (a plain
// client, which sees only that node's keys): the keys of asynq and ours
// are on more than one master, and each task's hash is on exactly one.
func checkClusterKeys(t *testing.T, addrs []string, tasks map[string]string) {
	t.Helper()
	ctx := t.Context()
	perNode := map[string][]string{}
	where := map[string][]string{} // task hash key -> nodes holding it
	for _, a := range addrs {
		rc := redis.NewClient(&redis.Options{Addr: a})
		keys, err := rc.Keys(ctx, "*").Result()
		rc.Close()
		if err != nil {
			t.Fatalf("KEYS on node %s: %v", a, err)
		}
		for _, k := range keys {
			if strings.HasPrefix(k, "asynq:") || strings.HasPrefix(k, "pgbackup:") {
				perNode[a] = append(perNode[a], k)
			}
			where[k] = append(where[k], a)
		}
	}
	var holding int
	for _, a := range addrs {
		if len(perNode[a]) > 0 {
			holding++
		}
		t.Logf("cluster node %s holds %d keys of asynq and ours", a, len(perNode[a]))
	}
	if holding < 2 {
		t.Errorf("the service's keys are on %d of the cluster's %d masters, want them spread: %v", holding, len(addrs), perNode)
	}
	for what, id := range tasks {
		if nodes := where["asynq:{"+queueOf(what)+"}:t:"+id]; len(nodes) != 1 {
			t.Errorf("%s task %s: its hash is on nodes %v, want exactly one", what, id, nodes)
		}
	}
}

// queueOf is the queue of the test's tasks by what they do.
func queueOf(what string) string {
	if what == "restore" {
		return "restore"
	}
	if what == "delete" {
		return "maintenance"
	}
	return "backup"
}
