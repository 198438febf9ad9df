package deploy

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// repoRoot is where the deployment files live, relative to this package.
const repoRoot = "../../.."

// combination is a list of compose files given with -f, in order, as
// docs/deployment.md documents it.
type combination []string

// command is the docker compose command line that uses the combination.
func (c combination) command() string {
	if len(c) == 1 && c[0] == "docker-compose.yml" {
		return "docker compose up"
	}
	var b strings.Builder
	b.WriteString("docker compose")
	for _, f := range c {
		b.WriteString(" -f " + f)
	}
	return b.String() + " up"
}

// tagged is a value that an override file marks with compose's !reset
// (remove what the earlier files set) or !override (replace it instead
// of merging).
type tagged struct {
	tag   string
	value any
}

// reference is one ${NAME...} in a compose file.
type reference struct {
	Name, Op, Arg string
}

// toTree converts a YAML node into maps, slices and strings (nil for
// null), resolving aliases and merge keys (<<) the way YAML does: keys
// written in the mapping win over merged ones, earlier merged maps over
// later ones. Compose's tags are kept as tagged values.
func toTree(n *yaml.Node) any {
	switch n.Tag {
	case "!reset":
		return tagged{tag: "!reset"}
	case "!override":
		c := *n
		c.Tag = ""
		return tagged{tag: "!override", value: toTree(&c)}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return toTree(n.Content[0])
	case yaml.AliasNode:
		return toTree(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			out = append(out, toTree(c))
		}
		return out
	case yaml.MappingNode:
		return mappingTree(n)
	}
	if n.Tag == "!!null" {
		return nil
	}
	return n.Value
}

func mappingTree(n *yaml.Node) map[string]any {
	out := map[string]any{}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			if v.Kind == yaml.SequenceNode {
				merged = append(merged, v.Content...)
			} else {
				merged = append(merged, v)
			}
			continue
		}
		out[k.Value] = toTree(v)
	}
	for _, m := range merged {
		mm, _ := toTree(m).(map[string]any)
		for k, v := range mm {
			if _, set := out[k]; !set {
				out[k] = v
			}
		}
	}
	return out
}

// replacedSequences are the attributes whose lists an override replaces
// rather than appends to (compose's merge rules: shell commands).
var replacedSequences = map[string]bool{"command": true, "entrypoint": true, "test": true}

// merge applies an override's value over the earlier files' one, with
// compose's rules: mappings merge key by key, lists append (except shell
// commands), anything else is replaced; !reset removes, !override
// replaces. It reports false when the key is to be removed.
func merge(key string, base, over any) (any, bool) {
	if t, ok := over.(tagged); ok {
		if t.tag == "!reset" {
			return nil, false
		}
		return t.value, true
	}
	bm, bok := base.(map[string]any)
	om, ook := over.(map[string]any)
	if ook && !bok {
		// A mapping new to the model: merged into an empty one, so that
		// tags inside it are applied too.
		bm, bok = map[string]any{}, true
	}
	if bok && ook {
		for k, ov := range om {
			if v, keep := merge(k, bm[k], ov); keep {
				bm[k] = v
			} else {
				delete(bm, k)
			}
		}
		return bm, true
	}
	bs, bok := base.([]any)
	ol, ook := over.([]any)
	if bok && ook && !replacedSequences[key] {
		return append(slices.Clone(bs), ol...), true
	}
	return over, true
}

// project is the model compose builds from a combination of files.
type project struct {
	files    combination
	services map[string]map[string]any
	// refs are the variables every file refers to.
	refs []reference
}

// loadProject reads, interpolates and merges the combination's files,
// with env as the shell environment and .env.
func loadProject(files combination, env map[string]string) (*project, error) {
	p := &project{files: files}
	merged := map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			return nil, err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		tree, refs, err := interpolateTree(toTree(&doc), env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		p.refs = append(p.refs, refs...)
		normalize(tree)
		merge("", merged, tree)
	}
	p.services = map[string]map[string]any{}
	svcs, _ := merged["services"].(map[string]any)
	for name, s := range svcs {
		m, _ := s.(map[string]any)
		p.services[name] = m
	}
	return p, nil
}

// normalize rewrites the short forms compose accepts into the long ones
// before merging, as compose does: depends_on as a list, environment as
// KEY=VALUE lines.
func normalize(tree any) {
	m, _ := tree.(map[string]any)
	svcs, _ := m["services"].(map[string]any)
	for _, s := range svcs {
		svc, _ := s.(map[string]any)
		if list, ok := svc["depends_on"].([]any); ok {
			deps := map[string]any{}
			for _, d := range list {
				deps[fmt.Sprint(d)] = map[string]any{}
			}
			svc["depends_on"] = deps
		}
		if list, ok := svc["environment"].([]any); ok {
			env := map[string]any{}
			for _, kv := range list {
				k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
				env[k] = v
			}
			svc["environment"] = env
		}
	}
}

// active lists the services `up` starts: those in no profile.
func (p *project) active() []string {
	var out []string
	for name, s := range p.services {
		if _, inProfile := s["profiles"]; !inProfile {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// ours tells whether a service runs our image: it is built from the
// Dockerfile.
func (p *project) ours(name string) bool {
	_, built := p.services[name]["build"]
	return built
}

// environment is a service's environment as KEY=VALUE.
func (p *project) environment(name string) map[string]string {
	out := map[string]string{}
	env, _ := p.services[name]["environment"].(map[string]any)
	for k, v := range env {
		if v == nil {
			v = ""
		}
		out[k] = fmt.Sprint(v)
	}
	return out
}

// mount is one entry of a service's volumes.
type mount struct {
	source, target string
	named          bool // a named volume, not a bind mount of a host path
}

func (p *project) mounts(name string) []mount {
	var out []mount
	list, _ := p.services[name]["volumes"].([]any)
	for _, v := range list {
		var m mount
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			if len(parts) == 1 {
				m.target = parts[0]
			} else {
				m.source, m.target = parts[0], parts[1]
			}
		case map[string]any:
			m.source, _ = v["source"].(string)
			m.target, _ = v["target"].(string)
		}
		m.named = m.source != "" && !strings.ContainsAny(m.source[:1], "./~$")
		out = append(out, m)
	}
	return out
}

// port is one published port.
type port struct {
	hostIP, published, target string
}

var portRe = regexp.MustCompile(`^(?:(\[[^\]]+\]|[^:]+):)??(?:([^:]*):)?([^:]+)$`)

func (p *project) ports(name string) ([]port, error) {
	var out []port
	list, _ := p.services[name]["ports"].([]any)
	for _, v := range list {
		switch v := v.(type) {
		case string:
			m := portRe.FindStringSubmatch(v)
			if m == nil {
				return nil, fmt.Errorf("port %q: not [ip:][host:]container", v)
			}
			out = append(out, port{hostIP: strings.Trim(m[1], "[]"), published: m[2], target: m[3]})
		case map[string]any:
			ip, _ := v["host_ip"].(string)
			out = append(out, port{hostIP: ip, published: fmt.Sprint(v["published"]), target: fmt.Sprint(v["target"])})
		}
	}
	return out, nil
}

// dependsOn lists the services a service waits for.
func (p *project) dependsOn(name string) []string {
	deps, _ := p.services[name]["depends_on"].(map[string]any)
	return slices.Sorted(maps.Keys(deps))
}

// interpolateTree replaces ${...} in every string value (not in keys,
// as compose does) and returns the references it met.
func interpolateTree(tree any, env map[string]string) (any, []reference, error) {
	var refs []reference
	var walk func(v any) (any, error)
	walk = func(v any) (any, error) {
		switch v := v.(type) {
		case string:
			s, r, err := interpolate(v, env)
			refs = append(refs, r...)
			return s, err
		case []any:
			for i := range v {
				nv, err := walk(v[i])
				if err != nil {
					return nil, err
				}
				v[i] = nv
			}
		case map[string]any:
			for k := range v {
				nv, err := walk(v[k])
				if err != nil {
					return nil, err
				}
				v[k] = nv
			}
		case tagged:
			nv, err := walk(v.value)
			return tagged{tag: v.tag, value: nv}, err
		}
		return v, nil
	}
	out, err := walk(tree)
	return out, refs, err
}

// missingError is compose's refusal to start without a required
// variable (${NAME:?message}).
type missingError struct{ name, message string }

func (e *missingError) Error() string {
	return fmt.Sprintf("required variable %s is missing: %s", e.name, e.message)
}

// requiredValue stands for what an operator puts in .env when compose
// asks for a variable: long enough for every secret's minimum length.
const requiredValue = "c0ffee0123456789abcdef0123456789abcdef0123456789"

// exampleValues are what an operator puts in .env for the required
// variables that are no secret and need a form of their own.
var exampleValues = map[string]string{
	"MINIO_ENDPOINT": "https://s3.example.com",
	"POSTGRES_HOST":  "db.example.com",
}

// loadFresh loads the combination as on a fresh machine: no environment
// but the variables compose refuses to start without, each set (as an
// operator would, after reading the message) to requiredValue. It
// returns the project and those variables.
func loadFresh(files combination) (*project, []string, error) {
	env := map[string]string{}
	var required []string
	for {
		p, err := loadProject(files, env)
		var missing *missingError
		if !errors.As(err, &missing) {
			slices.Sort(required)
			return p, required, err
		}
		if _, done := env[missing.name]; done || len(required) > 100 {
			return nil, nil, err
		}
		env[missing.name] = requiredValue
		if v, ok := exampleValues[missing.name]; ok {
			env[missing.name] = v
		}
		required = append(required, missing.name)
	}
}

var nameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// interpolate expands $NAME, ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt} and $$, with
// defaults that may hold further references, as compose does.
func interpolate(s string, env map[string]string) (string, []reference, error) {
	var b strings.Builder
	var refs []reference
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "$"):
			b.WriteByte('$')
			i++
		case strings.HasPrefix(rest, "{"):
			end := closingBrace(rest)
			if end < 0 {
				return "", nil, fmt.Errorf("%q: unclosed ${", s)
			}
			val, r, err := expand(rest[1:end], env)
			if err != nil {
				return "", nil, err
			}
			refs = append(refs, r...)
			b.WriteString(val)
			i += end + 1
		default:
			name := nameRe.FindString(rest)
			if name == "" {
				return "", nil, fmt.Errorf("%q: a $ that starts no variable (write $$)", s)
			}
			refs = append(refs, reference{Name: name})
			b.WriteString(env[name])
			i += len(name)
		}
	}
	return b.String(), refs, nil
}

// closingBrace is the index in s (which starts with "{") of the brace
// that closes it.
func closingBrace(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// expand evaluates the inside of one ${...}.
func expand(inner string, env map[string]string) (string, []reference, error) {
	name := nameRe.FindString(inner)
	if name == "" {
		return "", nil, fmt.Errorf("${%s}: no variable name", inner)
	}
	ref := reference{Name: name}
	tail := inner[len(name):]
	for _, op := range []string{":-", ":?", ":+", "-", "?", "+"} {
		if strings.HasPrefix(tail, op) {
			ref.Op, ref.Arg = op, tail[len(op):]
			break
		}
	}
	if ref.Op == "" && tail != "" {
		return "", nil, fmt.Errorf("${%s}: unknown form", inner)
	}
	refs := []reference{ref}
	val, set := env[name]
	empty := !set || val == ""
	arg := func() (string, error) {
		s, r, err := interpolate(ref.Arg, env)
		refs = append(refs, r...)
		return s, err
	}
	switch {
	case ref.Op == ":-" && empty, ref.Op == "-" && !set:
		s, err := arg()
		return s, refs, err
	case ref.Op == ":?" && empty, ref.Op == "?" && !set:
		return "", nil, &missingError{name: name, message: ref.Arg}
	case ref.Op == ":+":
		if empty {
			return "", refs, nil
		}
		s, err := arg()
		return s, refs, err
	case ref.Op == "+":
		if !set {
			return "", refs, nil
		}
		s, err := arg()
		return s, refs, err
	}
	return val, refs, nil
}
