package deploy

import (
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// devTools are the main packages under cmd/ that no deployment runs:
// make bench, make demo and the test bench. Any other main package (the
// archiver, when it comes) must be in the image.
var devTools = []string{"bench", "demo", "testbench"}

// runtimeID is the image's user and group, which owns the directories the
// compose volumes mount.
const runtimeID = "10001"

// deploymentPrograms are the main packages under cmd/, dev tools left out.
func deploymentPrograms(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repoRoot, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var mains []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), filepath.Join(repoRoot, "cmd", e.Name()),
			func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := pkgs["main"]; ok {
			mains = append(mains, e.Name())
		}
	}
	for _, d := range devTools {
		if !slices.Contains(mains, d) {
			t.Errorf("dev tool %s is no main package under cmd/ any more: update devTools", d)
		}
	}
	return slices.DeleteFunc(mains, func(m string) bool { return slices.Contains(devTools, m) })
}

func TestDeploymentProgramsFound(t *testing.T) {
	t.Parallel()
	got := deploymentPrograms(t)
	for _, want := range []string{"api", "worker", "scheduler", "pgbackup"} {
		if !slices.Contains(got, want) {
			t.Errorf("deploymentPrograms = %v, lacks %s", got, want)
		}
	}
}

// installedPrograms maps each program the image's last stage carries to
// its path there: built with go build -o in some stage and copied from it.
func installedPrograms(d *dockerfile) map[string]string {
	built := map[string]map[string]string{} // stage -> output path -> program
	for _, s := range d.stages {
		for _, words := range s.shellCommands() {
			for len(words) > 0 && strings.Contains(words[0], "=") {
				words = words[1:] // CGO_ENABLED=0 go build ...
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				continue
			}
			out := ""
			var pkgs []string
			for i := 2; i < len(words); i++ {
				switch w := words[i]; {
				case w == "-o" && i+1 < len(words):
					out = words[i+1]
					i++
				case strings.HasPrefix(w, "./cmd/"):
					pkgs = append(pkgs, path.Base(w))
				}
			}
			if built[s.name] == nil {
				built[s.name] = map[string]string{}
			}
			for _, p := range pkgs {
				o := out
				if o == "" || strings.HasSuffix(o, "/") {
					o += p
				}
				built[s.name][o] = p
			}
		}
	}
	installed := map[string]string{}
	for _, c := range d.final().copies() {
		for out, prog := range built[c.from] {
			for _, src := range c.srcs {
				switch {
				case src == out && strings.HasSuffix(c.dst, "/"):
					installed[prog] = c.dst + path.Base(out)
				case src == out:
					installed[prog] = c.dst
				case strings.HasSuffix(src, "/") && strings.HasPrefix(out, src):
					installed[prog] = path.Join(c.dst, strings.TrimPrefix(out, src))
				}
			}
		}
	}
	return installed
}

// onPath are the directories of Debian's default PATH.
var onPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// TestDockerfileCarriesEveryProgram: each program a deployment needs is
// built and copied into the image, on PATH, and every command the compose
// files run in our image is one of them.
func TestDockerfileCarriesEveryProgram(t *testing.T) {
	t.Parallel()
	d, err := parseDockerfile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	installed := installedPrograms(d)
	for _, prog := range deploymentPrograms(t) {
		p, ok := installed[prog]
		switch {
		case !ok:
			t.Errorf("cmd/%s is not built and copied into the image's last stage (add ./cmd/%s to go build, or it to devTools)", prog, prog)
		case !slices.Contains(onPath, path.Dir(p)) || path.Base(p) != prog:
			t.Errorf("cmd/%s lands at %s, not as %s in a PATH directory", prog, p, prog)
		}
	}
	for _, c := range combinations {
		p, _, err := loadFresh(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range p.active() {
			if cmd := p.command(name); p.ours(name) && (len(cmd) == 0 || installed[cmd[0]] == "") {
				t.Errorf("%v: service %s runs %v, which is not a program in the image", c, name, cmd)
			}
		}
	}
}

// imageIDs reads the users, groups and owned directories the last stage's
// RUN commands make (groupadd, useradd, install -d, chown).
type imageIDs struct {
	groups map[string]string    // name -> gid
	users  map[string][2]string // name -> uid, gid
	owned  map[string]string    // path -> "uid:gid", numeric where known
}

func readIDs(s *stage) imageIDs {
	ids := imageIDs{groups: map[string]string{}, users: map[string][2]string{}, owned: map[string]string{}}
	for _, w := range s.shellCommands() {
		flags, args := splitFlags(w[1:], "--gid", "-g", "--uid", "-u", "-o", "-m", "-t", "--home-dir", "-d", "--shell", "-s", "--owner", "--group", "--mode")
		switch w[0] {
		case "groupadd":
			if len(args) > 0 {
				ids.groups[args[len(args)-1]] = first(flags["--gid"], flags["-g"])
			}
		case "useradd":
			if len(args) > 0 {
				ids.users[args[len(args)-1]] = [2]string{first(flags["--uid"], flags["-u"]), first(flags["--gid"], flags["-g"])}
			}
		case "install":
			owner := ids.uid(first(flags["-o"], flags["--owner"])) + ":" + ids.gid(first(flags["-g"], flags["--group"]))
			for _, a := range args {
				ids.owned[path.Clean(a)] = owner
			}
		case "chown":
			if len(args) > 1 {
				u, g, _ := strings.Cut(args[0], ":")
				for _, a := range args[1:] {
					ids.owned[path.Clean(a)] = ids.uid(u) + ":" + ids.gid(g)
				}
			}
		}
	}
	return ids
}

// splitFlags separates a command's flags (those in withValue take the next
// word, or =value) from its other words.
func splitFlags(words []string, withValue ...string) (map[string]string, []string) {
	flags := map[string]string{}
	var args []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "-") {
			args = append(args, w)
			continue
		}
		if k, v, ok := strings.Cut(w, "="); ok {
			flags[k] = v
			continue
		}
		if slices.Contains(withValue, w) && i+1 < len(words) {
			// install -d is a flag of its own, useradd -d a value: the
			// only clash here, told apart by what follows.
			if w == "-d" && (strings.HasPrefix(words[i+1], "-") || words[0] == "install") {
				flags[w] = ""
				continue
			}
			flags[w] = words[i+1]
			i++
			continue
		}
		flags[w] = ""
	}
	return flags, args
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func (ids imageIDs) uid(u string) string {
	if v, ok := ids.users[u]; ok {
		return v[0]
	}
	return u
}

func (ids imageIDs) gid(g string) string {
	if v, ok := ids.groups[g]; ok {
		return v
	}
	return g
}

// TestImageUserAndVolumes: the image runs as 10001:10001, both exist, and
// every named volume our services mount, and every *_DIR setting they
// use, is a directory the image makes and gives to that user (a new named
// volume starts as a copy of it, owner included).
func TestImageUserAndVolumes(t *testing.T) {
	t.Parallel()
	d, err := parseDockerfile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	final := d.final()
	users := final.all("USER")
	if len(users) == 0 || users[len(users)-1].args != runtimeID+":"+runtimeID {
		t.Fatalf("the image's USER is %v, want %s:%s", users, runtimeID, runtimeID)
	}
	ids := readIDs(final)
	if !slices.Contains(slices.Collect(maps.Values(ids.groups)), runtimeID) {
		t.Errorf("no group with GID %s is made (groupadd --gid %s): groups %v", runtimeID, runtimeID, ids.groups)
	}
	if !slices.Contains(slices.Collect(maps.Values(ids.users)), [2]string{runtimeID, runtimeID}) {
		t.Errorf("no user with UID %s and GID %s is made: users %v", runtimeID, runtimeID, ids.users)
	}
	known := knownSettings()
	imageEnv := final.env()
	for k := range imageEnv {
		if !known[k] {
			t.Errorf("the image sets ENV %s, which configs.Config does not know", k)
		}
	}
	if _, forced := imageEnv["PG_BIN_DIR"]; forced {
		t.Error("the image sets PG_BIN_DIR, which turns off picking the client for the server's major version")
	}
	for _, c := range combinations {
		p, _, err := loadFresh(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range p.active() {
			if p.ours(name) {
				checkServiceDirs(t, p, name, ids, imageEnv)
			}
		}
	}
}

func checkServiceDirs(t *testing.T, p *project, name string, ids imageIDs, imageEnv map[string]string) {
	want := runtimeID + ":" + runtimeID
	var volumes []string
	for _, m := range p.mounts(name) {
		if !m.named {
			continue
		}
		volumes = append(volumes, m.target)
		if got := ids.owned[path.Clean(m.target)]; got != want {
			t.Errorf("%v: service %s mounts volume %s at %s, which the image does not make owned by %s (got %q)",
				p.files, name, m.source, m.target, want, got)
		}
	}
	env := map[string]string{}
	for k, v := range imageEnv {
		env[k] = v
	}
	for k, v := range p.environment(name) {
		env[k] = v
	}
	known := knownSettings()
	for k, dir := range env {
		// The directories the programs write to; PG_BIN_DIR names where
		// programs are, which the image's packages own.
		if !strings.HasSuffix(k, "_DIR") || !known[k] || dir == "" || k == "PG_BIN_DIR" {
			continue
		}
		if got := ids.owned[path.Clean(dir)]; got != want {
			t.Errorf("%v: service %s has %s=%s, which the image does not make owned by %s (got %q)", p.files, name, k, dir, want, got)
		}
		inVolume := slices.ContainsFunc(volumes, func(v string) bool {
			return dir == v || strings.HasPrefix(path.Clean(dir)+"/", path.Clean(v)+"/")
		})
		if len(volumes) > 0 && !inVolume {
			t.Errorf("%v: service %s has %s=%s outside its volumes %v: its files would not survive the container", p.files, name, k, dir, volumes)
		}
	}
}
