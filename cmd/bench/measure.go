package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// usage is what one child process cost.
type usage struct {
	wall time.Duration
	// maxRSSKiB is ru_maxrss from wait4, in KiB on Linux: the largest of
	// the child's peak RSS, the peaks of the descendants it waited for
	// (pgbackup's pg_dump), and the RSS of this process when it started the
	// child: Go starts children with vfork semantics, so at execve the
	// kernel folds the parent's high-water mark into the child's. It is an
	// upper bound, which is what the memory check wants.
	maxRSSKiB int64
	// hwmKiB is the child's own peak RSS (VmHWM in /proc/PID/status, read
	// every 20 ms until it exits): without the parent's share or its
	// children's. Growth in the last 20 ms can be missed.
	hwmKiB int64
	// treeRSSKiB is the largest sum of VmRSS over the child and all its
	// descendants, sampled every 20 ms: what the step held in memory at
	// once, e.g. pgbackup plus its pg_dump. A sample can miss a short peak.
	treeRSSKiB int64
	// cpu is user plus system time of the child and the descendants it
	// waited for (pgbackup's includes its pg_dump).
	cpu time.Duration
	// busy and total are /proc/stat ticks of the whole machine during the
	// step: busy/total is how much of all CPUs was in use, by any process
	// (PostgreSQL's backend and MinIO included).
	busy, total int64
	// minioCPU is the CPU time the MinIO server used during the step; -1
	// when its pid is unknown.
	minioCPU time.Duration
}

// machineCPU is the share of all CPUs in use during the step, in percent.
func (u usage) machineCPU() float64 {
	if u.total == 0 {
		return 0
	}
	return 100 * float64(u.busy) / float64(u.total)
}

// measure runs cmd to completion and reports its wall time, memory and CPU.
// The child is killed when ctx ends or when this process dies. stderr is
// kept (bounded) for the error message.
func measure(ctx context.Context, cmd *exec.Cmd, minioPid int) (usage, error) {
	stderr := &tailBuffer{max: 8 << 10}
	if cmd.Stderr == nil {
		cmd.Stderr = stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	// Flush dirty pages left by the previous step (a restored database, a
	// dump file) first, so that their writeback is not charged to this one.
	syscall.Sync()
	busy0, total0 := cpuTicks()
	minio0 := processCPU(minioPid)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return usage{}, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	stop := make(chan struct{})
	var tree, hwm int64
	var wg sync.WaitGroup
	wg.Go(func() { tree, hwm = sampleRSS(cmd.Process.Pid, stop) })
	err := cmd.Wait()
	u := usage{wall: time.Since(start)}
	busy1, total1 := cpuTicks()
	u.busy, u.total = busy1-busy0, total1-total0
	u.minioCPU = -1
	if minio1 := processCPU(minioPid); minio0 >= 0 && minio1 >= 0 {
		u.minioCPU = minio1 - minio0
	}
	close(stop)
	wg.Wait()
	u.treeRSSKiB, u.hwmKiB = tree, hwm
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			u.maxRSSKiB = ru.Maxrss
			u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return u, ctx.Err()
		}
		return u, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return u, nil
}

// cpuTicks reads the machine-wide busy and total CPU time from the first
// line of /proc/stat (user nice system idle iowait irq softirq steal ...).
func cpuTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0
	}
	for i, f := range fields[1:9] {
		n, _ := strconv.ParseInt(f, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// machineBusy returns the share of all CPUs in use over d, in percent.
func machineBusy(d time.Duration) float64 {
	b0, t0 := cpuTicks()
	time.Sleep(d)
	b1, t1 := cpuTicks()
	return usage{busy: b1 - b0, total: t1 - t0}.machineCPU()
}

// clockTick is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTick = 100

// processCPU is user plus system time of pid from /proc/PID/stat, or -1.
func processCPU(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name may hold spaces; the fields after ") " are fixed:
	// state is field 3, utime 14, stime 15.
	_, rest, ok := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(ut+st) * time.Second / clockTick
}

// sampleRSS polls /proc until stop is closed and returns the largest
// summed RSS (KiB) of pid and its descendants, and pid's last VmHWM.
func sampleRSS(pid int, stop <-chan struct{}) (tree, hwm int64) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		rss, h := memKiB(pid)
		for _, c := range children(pid) {
			rss += treeRSS(c)
		}
		tree = max(tree, rss)
		hwm = max(hwm, h)
		select {
		case <-stop:
			return tree, hwm
		case <-t.C:
		}
	}
}

func treeRSS(pid int) int64 {
	total, _ := memKiB(pid)
	for _, c := range children(pid) {
		total += treeRSS(c)
	}
	return total
}

// memKiB reads VmRSS and VmHWM of pid; zero once it has exited.
func memKiB(pid int) (rss, hwm int64) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if name == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	return rss, hwm
}

// children lists the child processes of every thread of pid.
func children(pid int) []int {
	base := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(base + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// tailBuffer keeps the last max bytes written: the end of a tool's stderr
// holds its fatal error.
type tailBuffer struct {
	max int
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(bytes.ToValidUTF8(b.buf, nil))
}

// pgEnv is the environment for PostgreSQL client tools: inherited PG*
// variables removed (they could point the tool elsewhere), the connection
// given as libpq variables, the password only there and never in argv.
func pgEnv(env benchEnv, db string) []string {
	out := withoutVars(os.Environ(), func(k string) bool { return strings.HasPrefix(k, "PG") })
	return append(out,
		"PGHOST="+env.pgHost,
		"PGPORT="+strconv.Itoa(env.pgPort),
		"PGUSER="+env.pgUser,
		"PGPASSWORD="+env.pgPassword,
		"PGDATABASE="+db,
		"PGSSLMODE=disable",
		"PGAPPNAME=pgbackup-bench",
	)
}

// withoutVars returns environ minus the variables whose name drop accepts.
func withoutVars(environ []string, drop func(name string) bool) []string {
	out := make([]string, 0, len(environ)+16)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !drop(name) {
			out = append(out, kv)
		}
	}
	return out
}
