package deploy

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// ignored tells whether a path relative to the repository root is left
// out by a .gitignore or .dockerignore: the last pattern that matches it
// or one of its parent directories decides (! re-includes). Enough of the
// syntax for root-level files and directories.
func ignored(patterns []string, p string) bool {
	out := false
	for _, pat := range patterns {
		neg := strings.HasPrefix(pat, "!")
		pat = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(pat, "!"), "/"), "/")
		for q := p; q != "." && q != "/"; q = path.Dir(q) {
			if ok, _ := path.Match(pat, q); ok || strings.TrimPrefix(pat, "**/") == q {
				out = !neg
				break
			}
		}
	}
	return out
}

func readPatterns(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestIgnoreFiles: secrets (.env, the TLS key), built programs and test
// output stay out of git and out of the image's build context.
func TestIgnoreFiles(t *testing.T) {
	t.Parallel()
	paths := []string{".env", "deploy/tls/tls.key", "test-output/_artifacts/1/failure.png", "bin/api"}
	for _, prog := range append(deploymentPrograms(t), devTools...) {
		paths = append(paths, prog) // go build ./cmd/<prog> at the root
	}
	for _, file := range []string{".gitignore", ".dockerignore"} {
		patterns := readPatterns(t, file)
		for _, p := range paths {
			if !ignored(patterns, p) {
				t.Errorf("%s does not leave out %s", file, p)
			}
		}
		for _, p := range []string{"go.mod", "cmd/api/main.go", "deploy/pgbackup.yaml"} {
			if ignored(patterns, p) {
				t.Errorf("%s leaves out %s, which the build or the compose files need", file, p)
			}
		}
	}
}
