package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/autograph/pgbackup/internal/testbench/procfs"
	"github.com/autograph/pgbackup/jobs/pgtool"
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
	stderr := &pgtool.TailBuffer{Max: 8 << 10}
	if cmd.Stderr == nil {
		cmd.Stderr = stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	// Flush dirty pages left by the previous step (a restored database, a
	// dump file) first, so that their writeback is not charged to this one.
	syscall.Sync()
	busy0, total0 := procfs.MachineTicks()
	minio0 := procfs.CPUTime(minioPid)
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
	busy1, total1 := procfs.MachineTicks()
	u.busy, u.total = busy1-busy0, total1-total0
	u.minioCPU = -1
	if minio1 := procfs.CPUTime(minioPid); minio0 >= 0 && minio1 >= 0 {
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

// machineBusy returns the share of all CPUs in use over d, in percent.
func machineBusy(d time.Duration) float64 {
	b0, t0 := procfs.MachineTicks()
	time.Sleep(d)
	b1, t1 := procfs.MachineTicks()
	return usage{busy: b1 - b0, total: t1 - t0}.machineCPU()
}

// sampleRSS polls /proc until stop is closed and returns the largest
// summed RSS (KiB) of pid and its descendants, and pid's last VmHWM.
func sampleRSS(pid int, stop <-chan struct{}) (tree, hwm int64) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		_, h := procfs.Memory(pid)
		tree = max(tree, procfs.TreeRSS(pid))
		hwm = max(hwm, h)
		select {
		case <-stop:
			return tree, hwm
		case <-t.C:
		}
	}
}

// pgEnv is the environment for PostgreSQL client tools against database
// db: the connection as libpq variables (the password only there, never in
// argv), inherited PG* variables removed.
func (b *bench) pgEnv(db string) []string {
	return b.env.pg.WithDatabase(db).Env(os.Environ())
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
