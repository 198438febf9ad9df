// Package procfs reads what Linux's /proc says about processes: whether one
// still runs, its parent and children, its memory and CPU time, and the
// machine's CPU counters. The test bench, the end-to-end tests and the
// benchmark all read these; each function returns a zero value (or an
// error) when the process is gone, since processes vanish at any moment.
package procfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTick = 100

// Stat is the part of /proc/PID/stat the callers use.
type Stat struct {
	Pid   int
	Comm  string // the command name, at most 15 bytes, may hold spaces
	State byte   // R, S, D, Z (zombie), X (dead), ...
	PPid  int
	// CPU is user plus system time.
	CPU time.Duration
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	st, err := parseStat(string(b))
	if err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// parseStat reads "pid (comm) state ppid ... utime stime ...". The command
// name may hold spaces and parentheses, so the fixed fields are counted
// from the last ')'.
func parseStat(s string) (Stat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Stat{}, errors.New("no command name")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return Stat{}, fmt.Errorf("pid: %w", err)
	}
	// Fields from field 3 (state) on: state is [0], ppid [1], utime [11], stime [12].
	f := strings.Fields(s[end+1:])
	if len(f) < 13 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Stat{}, err
	}
	return Stat{
		Pid: pid, Comm: s[open+1 : end], State: f[0][0], PPid: ppid,
		CPU: time.Duration(ut+st) * time.Second / clockTick,
	}, nil
}

// Alive reports whether pid runs. A zombie counts as gone: its parent may
// never reap it (some container inits are slow to), yet it holds no
// resources, no port and no file lock.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	st, err := ReadStat(pid)
	if err != nil {
		// No /proc (or no access to it): ask the kernel directly.
		err := syscall.Kill(pid, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
	return st.State != 'Z' && st.State != 'X'
}

// Pids lists every process's pid.
func Pids() []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	out := make([]int, 0, len(dirs))
	for _, d := range dirs {
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// Children lists the child processes of every thread of pid, from
// /proc/PID/task/TID/children; without that file (a kernel built without
// CONFIG_PROC_CHILDREN) it scans every process's parent.
func Children(pid int) []int {
	base := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(base + t.Name() + "/children")
		if errors.Is(err, os.ErrNotExist) {
			return childrenByScan(pid)
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func childrenByScan(ppid int) []int {
	var out []int
	for _, pid := range Pids() {
		if st, err := ReadStat(pid); err == nil && st.PPid == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// Descendants lists pid's children, their children and so on, each
// process after its own descendants: signalled in this order, no child
// outlives its parent long enough to be reparented and missed.
func Descendants(pid int) []int {
	var out []int
	for _, c := range Children(pid) {
		out = append(out, Descendants(c)...)
		out = append(out, c)
	}
	return out
}

// ChildrenNamed returns the live (not zombie) children of ppid whose
// command name is comm.
func ChildrenNamed(ppid int, comm string) []int {
	var out []int
	for _, pid := range Children(ppid) {
		if st, err := ReadStat(pid); err == nil && st.Comm == comm && st.State != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// CPUTime is pid's user plus system time, or -1 when pid is 0 or gone.
func CPUTime(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	st, err := ReadStat(pid)
	if err != nil {
		return -1
	}
	return st.CPU
}

// Memory reads VmRSS and VmHWM (peak RSS) of pid in KiB; zero once it has
// exited.
func Memory(pid int) (rssKiB, hwmKiB int64) {
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
			rssKiB = n
		} else {
			hwmKiB = n
		}
	}
	return rssKiB, hwmKiB
}

// TreeRSS is the summed VmRSS of pid and all its descendants, in KiB.
func TreeRSS(pid int) int64 {
	total, _ := Memory(pid)
	for _, c := range Descendants(pid) {
		rss, _ := Memory(c)
		total += rss
	}
	return total
}

// MachineTicks reads the machine-wide busy and total CPU time from the
// first line of /proc/stat (user nice system idle iowait irq softirq steal
// ...); idle and iowait are not busy. Zero when /proc/stat is unreadable.
func MachineTicks() (busy, total int64) {
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

// Cwd is pid's working directory.
func Cwd(pid int) (string, error) {
	return os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
}

// Cmdline is pid's argument list as ps shows it to any user: the
// arguments joined by NUL bytes.
func Cmdline(pid int) ([]byte, error) {
	return os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
}
