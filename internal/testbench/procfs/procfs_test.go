package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	tail := " 1 1 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 1 0"
	tests := []struct {
		name    string
		in      string
		want    Stat
		wantErr bool
	}{
		{name: "plain", in: "42 (pg_dump) S 7" + tail,
			want: Stat{Pid: 42, Comm: "pg_dump", State: 'S', PPid: 7, CPU: 4 * time.Second}},
		{name: "name with spaces and parentheses", in: "9 (a) b (c)) Z 1" + tail,
			want: Stat{Pid: 9, Comm: "a) b (c)", State: 'Z', PPid: 1, CPU: 4 * time.Second}},
		{name: "truncated", in: "9 (x) S 1 2 3", wantErr: true},
		{name: "no name", in: "9 x S 1" + tail, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("parseStat = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOwnProcess(t *testing.T) {
	t.Parallel()
	pid := os.Getpid()
	if !Alive(pid) {
		t.Fatal("Alive(own pid) = false")
	}
	if rss, hwm := Memory(pid); rss <= 0 || hwm < rss {
		t.Errorf("Memory = %d, %d KiB; want 0 < rss <= hwm", rss, hwm)
	}
	if cpu := CPUTime(pid); cpu < 0 {
		t.Errorf("CPUTime = %v, want >= 0", cpu)
	}
	if cpu := CPUTime(0); cpu != -1 {
		t.Errorf("CPUTime(0) = %v, want -1", cpu)
	}
	if busy, total := MachineTicks(); total <= 0 || busy > total {
		t.Errorf("MachineTicks = %d busy of %d", busy, total)
	}
	wd, _ := os.Getwd()
	if cwd, err := Cwd(pid); err != nil || cwd != wd {
		t.Errorf("Cwd = %q, %v; want %q", cwd, err, wd)
	}
	if !slices.Contains(Pids(), pid) {
		t.Error("Pids does not list this process")
	}
}

// TestTree starts sh with two sleeps below it and finds them as children
// and descendants, then sees them gone once killed.
func TestTree(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range Descendants(cmd.Process.Pid) {
			_ = (&os.Process{Pid: p}).Kill()
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	sh := cmd.Process.Pid
	var sleeps []int
	for deadline := time.Now().Add(10 * time.Second); len(sleeps) < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("sleep children of sh = %v, want 2", sleeps)
		}
		time.Sleep(20 * time.Millisecond)
		sleeps = ChildrenNamed(sh, "sleep")
	}
	if !slices.Contains(Children(os.Getpid()), sh) {
		t.Errorf("Children(self) = %v, want it to hold sh %d", Children(os.Getpid()), sh)
	}
	desc := Descendants(os.Getpid())
	for _, p := range append(sleeps, sh) {
		if !slices.Contains(desc, p) {
			t.Errorf("Descendants(self) = %v, want it to hold %d", desc, p)
		}
	}
	if i, j := slices.Index(desc, sleeps[0]), slices.Index(desc, sh); i > j {
		t.Errorf("Descendants = %v: a child (%d) comes after its parent (%d)", desc, sleeps[0], sh)
	}
	if got := TreeRSS(sh); got <= 0 {
		t.Errorf("TreeRSS(sh) = %d, want > 0", got)
	}
	st, err := ReadStat(sleeps[0])
	if err != nil || st.PPid != sh || st.Comm != "sleep" {
		t.Errorf("ReadStat(sleep) = %+v, %v; want ppid %d, comm sleep", st, err, sh)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if Alive(sh) {
		t.Error("Alive(sh) after it was killed and reaped")
	}
}
