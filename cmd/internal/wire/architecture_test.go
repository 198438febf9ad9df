package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is two levels above this package.
const repoRoot = "../../.."

// TestLibraryPackagesDoNotReadConfiguration keeps configuration at the edge:
// only cmd/ (and configs itself) may import configs.
func TestLibraryPackagesDoNotReadConfiguration(t *testing.T) {
	t.Parallel()
	for _, pkg := range goList(t, "-deps", "-f", "{{.ImportPath}}", "./jobs/...", "./store/...", "./handlers/...", "./web/...") {
		if pkg == "github.com/autograph/pgbackup/configs" {
			t.Fatal("a package under jobs/, store/, handlers/ or web/ imports configs; take plain options instead")
		}
	}
}

// TestBackendNamesOnlyWhereStoresAreBuilt keeps the names of particular
// backends out of the code that should work with any store: they may appear
// in store/ (which defines them), cmd/ (which builds stores) and the API's
// mapping of the old service's flags.
func TestBackendNamesOnlyWhereStoresAreBuilt(t *testing.T) {
	t.Parallel()
	allowed := func(rel string) bool {
		return strings.HasPrefix(rel, "store/") || strings.HasPrefix(rel, "cmd/") || rel == "handlers/compat.go"
	}
	walkGoFiles(t, func(rel string, fset *token.FileSet, f *ast.File) {
		if allowed(rel) {
			return
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && (lit.Value == `"minio"` || lit.Value == `"local"`) {
				t.Errorf("%s: literal %s; use store.LocalName / store.MinIOName or a configured name", fset.Position(lit.Pos()), lit.Value)
			}
			return true
		})
	})
}

// walkGoFiles parses every Go file of the module (outside hidden, testdata
// and bin directories) and hands it to fn with its slash-separated path
// relative to the module root.
func walkGoFiles(t *testing.T, fn func(rel string, fset *token.FileSet, f *ast.File)) {
	t.Helper()
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" || d.Name() == "bin" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		fn(rel, fset, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// goList runs go list with args in the module root and returns the words
// it prints.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	cmd := exec.Command(goBin, append([]string{"list"}, args...)...)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}
