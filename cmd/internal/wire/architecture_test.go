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
	for _, pkg := range deps(t, "./jobs/...", "./store/...", "./handlers/...", "./web/...") {
		if pkg == "github.com/autograph/pgbackup/configs" {
			t.Fatal("a package under jobs/, store/, handlers/ or web/ imports configs; take plain options instead")
		}
	}
}

// deps lists the import paths the packages matching patterns depend on,
// themselves included (go list -deps).
func deps(t *testing.T, patterns ...string) []string {
	t.Helper()
	return goList(t, append([]string{"-deps", "-f", "{{.ImportPath}}"}, patterns...)...)
}

// TestBackendNamesOnlyWhereStoresAreBuilt keeps the names of particular
// backends out of the code that should work with any store: they may appear
// in store/ (which defines them), cmd/ (which builds stores), the API's
// mapping of the old service's flags, and the end-to-end tests (which
// configure the programs as cmd/ does).
func TestBackendNamesOnlyWhereStoresAreBuilt(t *testing.T) {
	t.Parallel()
	allowed := func(rel string) bool {
		return strings.HasPrefix(rel, "store/") || strings.HasPrefix(rel, "cmd/") || rel == "handlers/compat.go" ||
			strings.HasPrefix(rel, "internal/e2e/")
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

// TestConfigsIsData keeps configs to decoding and syntax: it imports no
// package of jobs/ (their rules are checked here, in wiring) and reads no
// file (wiring reads CONFIG_FILE and the files settings name, once).
func TestConfigsIsData(t *testing.T) {
	t.Parallel()
	const jobsPkg = "github.com/autograph/pgbackup/jobs"
	for _, pkg := range deps(t, "./configs") {
		if pkg == jobsPkg || strings.HasPrefix(pkg, jobsPkg+"/") {
			t.Errorf("configs depends on %s; check that rule in cmd/internal/wire instead", pkg)
		}
	}
	fileReaders := map[string]bool{"ReadFile": true, "Open": true, "OpenFile": true, "ReadDir": true, "Stat": true, "Lstat": true}
	inspectPackage(t, filepath.Join(repoRoot, "configs"), func(fset *token.FileSet, n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && isIdent(sel.X, "os") && fileReaders[sel.Sel.Name] {
			t.Errorf("%s: os.%s in configs; read files in cmd/internal/wire", fset.Position(sel.Pos()), sel.Sel.Name)
		}
		return true
	})
}

// TestNoSettingFromErrorText: code that decides which setting is wrong
// uses *configs.SettingError or sentinel errors, never the message, so
// configs and wiring read no error's text outside Error methods
// themselves. Tests may still read messages.
func TestNoSettingFromErrorText(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{filepath.Join(repoRoot, "configs"), "."} {
		inspectPackage(t, dir, func(fset *token.FileSet, n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				return n.Name.Name != "Error"
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Error" && len(n.Args) == 0 {
					t.Errorf("%s: an error's text read in code; use errors.As / errors.Is", fset.Position(n.Pos()))
				}
			}
			return true
		})
	}
}

// inspectPackage walks the non-test Go files in dir; visit says whether
// to go into a node's children.
func inspectPackage(t *testing.T, dir string, visit func(*token.FileSet, ast.Node) bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool { return n == nil || visit(fset, n) })
	}
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
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
