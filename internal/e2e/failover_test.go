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
			// production sentinel would use its defaults (30 s).
			os.WriteFile(conf, fmt.Appendf(nil, "port %d\nbind 127.0.0.1\ndir %s\n"+
				"sentinel monitor %s 127.0.0.1 %d 2\n"+
				"sentinel down-after-milliseconds %s 1000\n"+
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
// Redis master while they run, and checks that a sentinel's promotion of
// the replica is followed by API and workers without a restart: /readyz
// is 503 at most while the failover lasts and 200 after, and every backup
// accepted before and after completes exactly once.
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	h := startRedisHA(t)
	c := newCluster(t, "REDIS_SENTINEL_ADDRS="+h.sentinelAddrs(), "REDIS_SENTINEL_MASTER="+h.name,
		// A 202 means a replica holds the task, so the failover cannot lose it.
		"REDIS_WAIT_REPLICAS=1", "REDIS_WAIT_TIMEOUT=1s")
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (id int PRIMARY KEY, v text)`,
		`INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	c.startAPI()
	c.start("worker-a", "worker")
	c.start("worker-b", "worker")

	const before, after = 10, 3
	tasks := map[string]string{} // backup name -> task id
	create := func(name string) {
		tasks[name] = c.create(client.CreateBackupRequest{BackupName: name}).TaskID
	}
	for i := range before {
		create(fmt.Sprintf("ha-before-%02d", i))
	}
	// Kill the master while a backup runs.
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := c.viewer().Task(t.Context(), tasks["ha-before-00"])
		if err == nil && (st.State == client.StateActive || st.State == client.StateCompleted) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first backup never started: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	oldPort := h.master.port
	killed := time.Now()
	h.master.kill()

	// Watch /readyz until the sentinels promoted the replica and the API
	// answers 200 again.
	ctx := context.Background()
	var saw503 bool
	var recovered time.Duration
	anon := c.api("")
	for {
		var r client.Response
		_, err := anon.Readyz(ctx, client.WithResponse(&r))
		code := r.StatusCode // 0 without an answer
		port, perr := h.masterPort(ctx)
		promoted := perr == nil && port == h.replica.port
		switch {
		case code == http.StatusServiceUnavailable:
			saw503 = true
		case code == http.StatusOK && promoted:
			recovered = time.Since(killed)
		case code != http.StatusOK:
			t.Fatalf("/readyz = %d (%v) during the failover, want 200 or 503", code, err)
		}
		if recovered > 0 {
			break
		}
		if time.Since(killed) > time.Minute {
			t.Fatalf("no recovery a minute after the master was killed (master port %d, was %d; readyz %d)", port, oldPort, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("failover: /readyz 200 against the promoted replica %.1f s after the master was killed (saw 503 in between: %v)",
		recovered.Seconds(), saw503)
	// And it stays 200: nothing was restarted.
	for range 10 {
		if _, err := anon.Readyz(ctx); err != nil {
			t.Fatalf("/readyz = %v after the failover", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	for i := range after {
		create(fmt.Sprintf("ha-after-%02d", i))
	}
	for name, id := range tasks {
		st := c.waitTask(id, 3*time.Minute)
		if len(st.Result) == 0 || string(st.Result) == "null" {
			t.Errorf("%s: completed without a result", name)
		}
	}
	t.Logf("all %d backups completed %.1f s after the kill", len(tasks), time.Since(killed).Seconds())

	// Exactly once: each name listed once, one archive and one manifest
	// per name in MinIO, and the archive's bytes match the checksum its
	// manifest records.
	list := c.listBackups()
	if len(list) != before+after {
		t.Errorf("listed %d backups, want %d", len(list), before+after)
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
	if len(perName) != before+after {
		t.Errorf("MinIO holds %d backup names, want %d: %v", len(perName), before+after, perName)
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
// asynqmon's queue view.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := startRedisCluster(t)
	c := newCluster(t, "REDIS_CLUSTER_ADDRS="+strings.Join(addrs, ","), "REDIS_DB=0")
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE t (id int PRIMARY KEY)`, `INSERT INTO t SELECT generate_series(1, 500)`)
	want := c.env.Fingerprint(t, c.source)
	c.startAPI()
	c.start("worker", "worker")

	out := c.create(client.CreateBackupRequest{BackupName: "on-cluster"})
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
	c.waitTask(out.TaskID, 2*time.Minute)
	if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, target), want); diff != "" {
		t.Fatalf("restore on a cluster: %s", diff)
	}
	out = c.remove("on-cluster")
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
}
