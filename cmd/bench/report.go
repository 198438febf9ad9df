package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/autograph/pgbackup/internal/testbench/procfs"
)

// print writes the table of every step measured so far.
func (b *bench) print() {
	const row = "%-46s %7s %12s %11s %9s %9s %6s %10s %5s\n"
	fmt.Println()
	if b.o.repeat > 1 {
		fmt.Printf("each row: the fastest of %d runs\n", b.o.repeat)
	}
	fmt.Printf(row, "step", "wall s", "archive MiB", "maxrss MiB", "own MiB", "tree MiB", "CPU s", "MinIO CPU", "busy")
	section := ""
	for _, s := range b.steps {
		if s.section != section {
			section = s.section
			fmt.Println("[" + section + "]")
		}
		archive := "-"
		if s.archive >= 0 {
			archive = fmt.Sprintf("%.1f", float64(s.archive)/(1<<20))
		}
		minioCPU := "-"
		if s.u.minioCPU >= 0 {
			minioCPU = fmt.Sprintf("%.1f", s.u.minioCPU.Seconds())
		}
		name := "  " + s.name
		if s.sum {
			name = "  = " + s.name
		}
		fmt.Printf(row, name, fmt.Sprintf("%.1f", s.u.wall.Seconds()), archive,
			fmt.Sprintf("%.1f", kib(s.u.maxRSSKiB)), fmt.Sprintf("%.1f", kib(s.u.hwmKiB)), fmt.Sprintf("%.1f", kib(s.u.treeRSSKiB)),
			fmt.Sprintf("%.1f", s.u.cpu.Seconds()), minioCPU, fmt.Sprintf("%.0f%%", s.u.machineCPU()))
	}
	_, self := procfs.Memory(os.Getpid())
	fmt.Printf(`
maxrss: ru_maxrss from wait4, an upper bound: the largest of the process's
own peak RSS, its waited-for children's (pgbackup's pg_dump) and this bench's
RSS when it started the process (at exec the kernel folds the parent's
high-water mark into a vfork'ed child's; this bench's peak is %.1f MiB, hence
the floor on small steps). own: the process's own peak RSS (VmHWM, sampled
every 20 ms). tree: largest sum of RSS over the process and its children,
sampled every 20 ms. CPU s: user+system time of the process and its children.
MinIO CPU: the MinIO server's CPU seconds in the step. busy: share of all
CPUs in use during the step by any process (the PostgreSQL backend, MinIO and
anything else running on the machine).
`, kib(self))
}

func kib(n int64) float64 { return float64(n) / 1024 }

func (b *bench) find(section, name string) (step, bool) {
	for _, s := range b.steps {
		if s.section == section && s.name == name {
			return s, true
		}
	}
	return step{}, false
}

func ratio(a, c float64) string {
	if c == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/c)
}

// summary prints the ratios and fails when an engine backup's peak RSS
// reached the limit, so the memory claim is checked on every run.
func (b *bench) summary() error {
	fmt.Println("\nratios (engine / other; below 1 means the engine is faster or smaller)")
	def := "backup, " + levels[0].label
	eng, _ := b.find(def, engineBackupStep)
	old, _ := b.find(def, "old way total")
	raw, _ := b.find(def, "raw pg_dump -Fc > /dev/null")
	line := func(label, value string) { fmt.Printf("  %-48s %s\n", label+":", value) }
	line("backup wall, engine / old way", ratio(eng.u.wall.Seconds(), old.u.wall.Seconds()))
	for _, lvl := range levels {
		e, _ := b.find("backup, "+lvl.label, engineBackupStep)
		r, _ := b.find("backup, "+lvl.label, "raw pg_dump -Fc > /dev/null")
		line("backup wall, engine / raw pg_dump, "+lvl.label, ratio(e.u.wall.Seconds(), r.u.wall.Seconds()))
	}
	line("backup own peak RSS, engine / old way", fmt.Sprintf("%s (%.1f vs %.1f MiB)",
		ratio(kib(eng.u.hwmKiB), kib(old.u.hwmKiB)), kib(eng.u.hwmKiB), kib(old.u.hwmKiB)))
	line("backup own peak RSS, engine / raw pg_dump", fmt.Sprintf("%s (%.1f vs %.1f MiB)",
		ratio(kib(eng.u.hwmKiB), kib(raw.u.hwmKiB)), kib(eng.u.hwmKiB), kib(raw.u.hwmKiB)))
	er, _ := b.find(restoreSection, engineRestoreStep)
	or, _ := b.find(restoreSection, "old way total")
	line("restore wall, engine / old way", ratio(er.u.wall.Seconds(), or.u.wall.Seconds()))
	line("restore own peak RSS, engine / old way", fmt.Sprintf("%s (%.1f vs %.1f MiB)",
		ratio(kib(er.u.hwmKiB), kib(or.u.hwmKiB)), kib(er.u.hwmKiB), kib(or.u.hwmKiB)))

	limit := b.o.maxRSSMiB << 10
	var errs []error
	var worst int64
	for _, s := range b.engineRSS {
		worst = max(worst, s.u.maxRSSKiB)
		if s.u.maxRSSKiB <= 0 || s.u.maxRSSKiB >= limit {
			errs = append(errs, fmt.Errorf("engine backup (%s) peak RSS (ru_maxrss) %.1f MiB, limit %d MiB", s.section, kib(s.u.maxRSSKiB), b.o.maxRSSMiB))
		}
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Printf("\nFAIL: %v\n", err)
		return err
	}
	fmt.Printf("\nOK: the peak RSS (ru_maxrss) of all %d engine backups is under %d MiB (largest %.1f MiB)\n", len(b.engineRSS), b.o.maxRSSMiB, kib(worst))
	return nil
}

func printServiceRows(rows []svcRow) {
	fmt.Println("\nstep                                                           wall s  archive MiB  worker MiB  tree MiB  temp disk MiB")
	section := ""
	for _, r := range rows {
		if r.section != section {
			section = r.section
			fmt.Printf("[%s]\n", section)
		}
		archive := "-"
		if r.archive >= 0 {
			archive = fmt.Sprintf("%.1f", float64(r.archive)/(1<<20))
		}
		fmt.Printf("  %-60s %6.1f  %11s  %10.1f  %8.1f  %13.1f\n", r.name, r.wall.Seconds(), archive,
			kib(r.hwmKiB), kib(r.treeKiB), float64(r.diskBytes)/(1<<20))
	}
}

func findRow(rows []svcRow, name string) svcRow {
	for _, r := range rows {
		if r.name == name {
			return r
		}
	}
	return svcRow{}
}

// serviceSummary prints the ratios the performance work aims at, each
// with its target, and fails when a service backup's worker peak RSS
// reached the limit.
func serviceSummary(rows []svcRow, load []loadResult, l listingResult, limitMiB int64) error {
	two := findRow(rows, "two-step: pg_dump -Fc -f file, then upload")
	floor := findRow(rows, "floor: pg_dump -Fc -Z0 > /dev/null")
	fmt.Println("\nservice ratios (targets in brackets)")
	line := func(label, value string) { fmt.Printf("  %-58s %s\n", label+":", value) }
	for _, c := range codecsBench {
		s := findRow(rows, "service, COMPRESSION="+c)
		line("backup, service "+c+" / two-step [<= 0.35 for zstd]", ratio(s.wall.Seconds(), two.wall.Seconds()))
		line("backup, service "+c+" / floor", ratio(s.wall.Seconds(), floor.wall.Seconds()))
		line("archive, service "+c+" / pg_dump -Fc [<= 1 for zstd]", ratio(float64(s.archive), float64(two.archive)))
	}
	raw := findRow(rows, "raw pg_restore --single-transaction of a local -Z0 file")
	svc := findRow(rows, "service restore of the zstd backup")
	line("restore, service / raw pg_restore [<= 1.1]", ratio(svc.wall.Seconds(), raw.wall.Seconds()))
	rep := findRow(rows, "3 zstd backups in a row to both stores, one worker")
	line("worker peak RSS over repeated backups [<= 100 MiB]", fmt.Sprintf("%.1f MiB", kib(rep.hwmKiB)))
	for _, r := range load {
		line(r.name+" [>= 2000 req/s, p99 <= 20 ms]", fmt.Sprintf("%.0f req/s, p99 %.1f ms", r.rps, ms(r.p99)))
	}
	line(fmt.Sprintf("list of %d backups, fresh API with catalog [< 1 s]", l.backups), fmt.Sprintf("%.0f ms", ms(l.catalogCold)))
	line("create's existence check, p99 [< 50 ms]", fmt.Sprintf("%.1f ms (409), %.1f ms (202)", ms(l.exists99), ms(l.absent99)))
	for _, r := range rows {
		if strings.HasPrefix(r.name, "service, ") && r.hwmKiB >= limitMiB<<10 {
			return fmt.Errorf("%s: worker peak RSS %.1f MiB, limit %d MiB", r.name, kib(r.hwmKiB), limitMiB)
		}
	}
	return nil
}
