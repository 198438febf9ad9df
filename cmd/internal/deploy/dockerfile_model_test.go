package deploy

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ENV, USER, ...
	args string
	line int
}

// stage is one FROM and what follows it.
type stage struct {
	name  string // the AS name, or its index
	base  string
	instr []instruction
}

type dockerfile struct{ stages []*stage }

// parseDockerfile reads a Dockerfile: comments and blank lines dropped,
// lines ending in \ joined, instructions grouped by stage.
func parseDockerfile(path string) (*dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &dockerfile{}
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	start, n := 0, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, cont := strings.CutSuffix(trimmed, `\`); cont {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		if err := d.add(cur.String(), start); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, start, err)
		}
		cur.Reset()
	}
	return d, sc.Err()
}

func (d *dockerfile) add(text string, line int) error {
	cmd, args, _ := strings.Cut(text, " ")
	in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: line}
	if in.cmd == "FROM" {
		f := strings.Fields(in.args)
		s := &stage{name: fmt.Sprint(len(d.stages))}
		for i := 0; i < len(f); i++ {
			switch {
			case strings.HasPrefix(f[i], "--"):
			case strings.EqualFold(f[i], "AS") && i+1 < len(f):
				s.name = f[i+1]
				i++
			case s.base == "":
				s.base = f[i]
			}
		}
		d.stages = append(d.stages, s)
		return nil
	}
	if len(d.stages) == 0 {
		if in.cmd == "ARG" {
			return nil
		}
		return fmt.Errorf("%s before FROM", in.cmd)
	}
	s := d.stages[len(d.stages)-1]
	s.instr = append(s.instr, in)
	return nil
}

// final is the stage the image is made of.
func (d *dockerfile) final() *stage { return d.stages[len(d.stages)-1] }

// all returns the stage's instructions of one kind.
func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// env is what the stage's ENV instructions set (KEY=VALUE pairs, or the
// old "ENV KEY VALUE" form), quotes removed.
func (s *stage) env() map[string]string {
	out := map[string]string{}
	for _, in := range s.all("ENV") {
		f := strings.Fields(in.args)
		if len(f) > 0 && !strings.Contains(f[0], "=") {
			out[f[0]] = strings.Join(f[1:], " ")
			continue
		}
		for _, kv := range f {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = strings.Trim(v, `"'`)
		}
	}
	return out
}

// shellCommands splits the stage's RUN instructions into simple
// commands: separated by ;, && or ||, each as its words. Enough for
// reading which packages are built and which users and directories are
// made, not a shell.
func (s *stage) shellCommands() [][]string {
	var out [][]string
	for _, in := range s.all("RUN") {
		text := strings.NewReplacer("&&", ";", "||", ";").Replace(in.args)
		for _, part := range strings.Split(text, ";") {
			if f := strings.Fields(part); len(f) > 0 {
				for i := range f {
					f[i] = strings.Trim(f[i], `"'`)
				}
				out = append(out, f)
			}
		}
	}
	return out
}

// copyFrom is one COPY --from=stage src... dst.
type copyFrom struct {
	from string
	srcs []string
	dst  string
}

func (s *stage) copies() []copyFrom {
	var out []copyFrom
	for _, in := range s.all("COPY") {
		var c copyFrom
		var paths []string
		for _, f := range strings.Fields(in.args) {
			if v, ok := strings.CutPrefix(f, "--from="); ok {
				c.from = v
			} else if !strings.HasPrefix(f, "--") {
				paths = append(paths, f)
			}
		}
		if c.from == "" || len(paths) < 2 {
			continue
		}
		c.srcs, c.dst = paths[:len(paths)-1], paths[len(paths)-1]
		out = append(out, c)
	}
	return out
}
