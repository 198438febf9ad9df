package deploy

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/configs"
)

// overrides are the override files, in the order they are given after
// docker-compose.yml. Any subset of them, in this order, is a documented
// combination (docs/deployment.md lists all eight), and every check runs on
// each.
var overrides = []string{"docker-compose.existing-server.yml", "docker-compose.external-s3.yml", "docker-compose.tls.yml"}

var combinations = func() []combination {
	var out []combination
	for set := 0; set < 1<<len(overrides); set++ {
		c := combination{"docker-compose.yml"}
		for i, f := range overrides {
			if set&(1<<i) != 0 {
				c = append(c, f)
			}
		}
		out = append(out, c)
	}
	return out
}()

// knownSettings are the environment variables the programs read: the env
// tags of configs.Config (and of structs inside it), and CONFIG_FILE.
func knownSettings() map[string]bool {
	known := map[string]bool{wire.ConfigFileEnv: true}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			switch {
			case name != "" && name != "-":
				known[prefix+name] = true
			case name == "" && f.Type.Kind() == reflect.Struct:
				walk(f.Type, prefix+f.Tag.Get("envPrefix"))
			}
		}
	}
	walk(reflect.TypeFor[configs.Config](), "")
	return known
}

func TestKnownSettingsFromTags(t *testing.T) {
	t.Parallel()
	known := knownSettings()
	for _, name := range []string{"POSTGRES_HOST", "MINIO_ROOT_PASSWORD", "BACKUP_TARGETS", "CONFIG_FILE"} {
		if !known[name] {
			t.Errorf("%s is missing from the settings read off configs.Config", name)
		}
	}
	if known["BACKUP_DIR_TYPO"] || known[""] {
		t.Error("knownSettings accepts names configs does not have")
	}
}

// TestComposeFilesDocumented keeps the list above, the files in the
// repository and docs/deployment.md in step.
func TestComposeFilesDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "deployment.md"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, c := range combinations {
		for _, f := range c {
			used[f] = true
		}
		if !strings.Contains(string(doc), c.command()) {
			t.Errorf("docs/deployment.md does not show %q", c.command())
		}
	}
	files, _ := filepath.Glob(filepath.Join(repoRoot, "docker-compose*.y*ml"))
	files2, _ := filepath.Glob(filepath.Join(repoRoot, "compose*.y*ml"))
	for _, f := range append(files, files2...) {
		// An operator's own override, which compose reads by itself; not
		// one of ours.
		if base := filepath.Base(f); strings.Contains(base, ".override.") {
			continue
		}
		if !used[filepath.Base(f)] {
			t.Errorf("%s is in no documented combination (add it to combinations and to docs/deployment.md)", filepath.Base(f))
		}
	}
}

func TestComposeCombinations(t *testing.T) {
	t.Parallel()
	for _, c := range combinations {
		t.Run(strings.Join(c, "+"), func(t *testing.T) {
			p, required, err := loadFresh(c)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("required in .env: %s", strings.Join(required, ", "))
			if len(p.active()) == 0 {
				t.Fatal("no service starts")
			}
			checkImages(t, p)
			checkDependsOn(t, p)
			checkEnvironment(t, p)
			checkPorts(t, p)
			checkSecrets(t, p)
			checkSettingsLoad(t, p)
		})
	}
}

// specificTag is a version, not a moving name such as "latest" or a bare
// major ("16", "7"): digits with a dot (16.11, 7.4.6) or MinIO's
// RELEASE.<date> tags.
var specificTag = regexp.MustCompile(`(^|[^0-9])[0-9]+\.[0-9]+|^RELEASE\.20`)

// checkImages: every image that is not built here is pinned, and none
// comes from Docker Hub's minio/ namespace (no longer published there).
func checkImages(t *testing.T, p *project) {
	for _, name := range p.active() {
		if p.ours(name) {
			continue
		}
		ref, _ := p.services[name]["image"].(string)
		if ref == "" {
			t.Errorf("service %s has neither image nor build", name)
			continue
		}
		if err := checkImageRef(ref); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
	}
}

// checkImageRef applies the pinning rules to one image reference.
func checkImageRef(ref string) error {
	repo, digest, _ := strings.Cut(ref, "@")
	tag := ""
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	// Docker Hub when the first part names no registry host.
	first, _, hasSlash := strings.Cut(repo, "/")
	hub := !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost")
	hubPath := strings.TrimPrefix(strings.TrimPrefix(repo, "docker.io/"), "index.docker.io/")
	if hub || first == "docker.io" || first == "index.docker.io" {
		if strings.HasPrefix(hubPath, "minio/") {
			return fmt.Errorf("image %s: Docker Hub's minio/ images are no longer published; use quay.io/minio/...", ref)
		}
	}
	switch {
	case digest != "":
		return nil
	case tag == "" || tag == "latest":
		return fmt.Errorf("image %s is not pinned (no tag, or latest)", ref)
	case !specificTag.MatchString(tag):
		return fmt.Errorf("image %s: tag %q is not a specific version (want e.g. 16.11 or RELEASE.2025-...)", ref, tag)
	}
	return nil
}

// checkDependsOn: every depends_on names a service that this combination
// defines and starts.
func checkDependsOn(t *testing.T, p *project) {
	active := p.active()
	for _, name := range active {
		for _, dep := range p.dependsOn(name) {
			if _, defined := p.services[dep]; !defined {
				t.Errorf("service %s depends on %s, which %v does not define", name, dep, p.files)
			} else if !slices.Contains(active, dep) {
				t.Errorf("service %s depends on %s, which %v does not start (it is in a profile)", name, dep, p.files)
			}
		}
	}
}

// checkEnvironment: our services are given only settings configs knows.
func checkEnvironment(t *testing.T, p *project) {
	known := knownSettings()
	for _, name := range p.active() {
		if !p.ours(name) {
			continue
		}
		for k := range p.environment(name) {
			if !known[k] {
				t.Errorf("service %s sets %s, which configs.Config does not know", name, k)
			}
		}
	}
}

// checkPorts: a published port is bound to loopback, unless it is our
// API serving TLS.
func checkPorts(t *testing.T, p *project) {
	for _, name := range p.active() {
		ports, err := p.ports(name)
		if err != nil {
			t.Errorf("service %s: %v", name, err)
			continue
		}
		env := p.environment(name)
		tls := p.ours(name) && env["API_TLS_CERT_FILE"] != "" && env["API_TLS_KEY_FILE"] != ""
		for _, pt := range ports {
			if loopback(pt.hostIP) || tls {
				continue
			}
			t.Errorf("service %s publishes %s on %q, not on 127.0.0.1 (tokens and credentials would cross the network in clear text)",
				name, pt.target, pt.hostIP)
		}
	}
}

func loopback(ip string) bool { return ip == "127.0.0.1" || ip == "::1" || ip == "localhost" }

// secretName matches the variables that hold a secret: passwords, keys,
// tokens; the _FILE settings name a file instead.
var secretName = regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN|KEY)S?$`)

// checkSecrets: no secret may be empty, or known to everyone who read the
// file, because nobody set it. Every reference to a secret variable is
// required (${X:?...}): an empty default (${X:-}) or a bare ${X} leaves it
// empty, a written-in default is no secret. And every secret a service is
// given comes from such a variable, not a literal in the file.
func checkSecrets(t *testing.T, p *project) {
	for _, r := range p.refs {
		if !secretName.MatchString(r.Name) || r.Op == ":?" || r.Op == "?" {
			continue
		}
		switch {
		case (r.Op == ":-" || r.Op == "-") && r.Arg == "":
			t.Errorf("${%s%s}: a secret with an empty default; require it with ${%s:?...}", r.Name, r.Op, r.Name)
		case r.Op == ":-" || r.Op == "-":
			t.Errorf("${%s%s%s}: a secret with a default everyone can read; require it with ${%s:?...}", r.Name, r.Op, r.Arg, r.Name)
		default:
			t.Errorf("${%s%s...}: a secret that is empty when unset; require it with ${%s:?...}", r.Name, r.Op, r.Name)
		}
	}
	for _, name := range p.active() {
		for k, v := range p.environment(name) {
			if secretName.MatchString(k) && v != requiredValue {
				t.Errorf("service %s: %s is not taken from a required variable (${...:?...})", name, k)
			}
		}
	}
}

// checkSettingsLoad: each of our services' environment, on top of the
// image's ENV, loads with wire.LoadFrom, and the API's tokens too; the
// CONFIG_FILE the compose file mounts is read from the repository.
func checkSettingsLoad(t *testing.T, p *project) {
	img, err := parseDockerfile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range p.active() {
		if !p.ours(name) {
			continue
		}
		env := img.final().env()
		for k, v := range p.environment(name) {
			env[k] = v
		}
		configFile := ""
		if f := env[wire.ConfigFileEnv]; f != "" {
			configFile = hostPath(p, name, f)
			if configFile == "" {
				t.Errorf("service %s: CONFIG_FILE %s is not mounted from the repository", name, f)
				continue
			}
			delete(env, wire.ConfigFileEnv)
		}
		var environ []string
		for k, v := range env {
			environ = append(environ, k+"="+v)
		}
		s, err := wire.LoadFrom(configFile, environ)
		if err != nil {
			t.Errorf("service %s: its settings do not load: %v", name, err)
			continue
		}
		if slices.Contains(p.command(name), "api") {
			if admin, _, err := wire.APITokens(s.Config); err != nil || len(admin) == 0 {
				t.Errorf("service %s: no usable admin token (%v)", name, err)
			}
		}
	}
}

// hostPath is the file of the repository that a bind mount of the service
// shows at the container path, "" when none does.
func hostPath(p *project, name, containerPath string) string {
	for _, m := range p.mounts(name) {
		if m.named || m.source == "" {
			continue
		}
		rel, err := filepath.Rel(m.target, containerPath)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		f := filepath.Join(repoRoot, path.Clean(m.source), rel)
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return ""
}

// command is the service's command as a list.
func (p *project) command(name string) []string {
	switch c := p.services[name]["command"].(type) {
	case string:
		return strings.Fields(c)
	case []any:
		var out []string
		for _, a := range c {
			out = append(out, a.(string))
		}
		return out
	}
	return nil
}
