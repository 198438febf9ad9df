package wire

import (
	"go/ast"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	module      = "github.com/autograph/pgbackup/"
	workerPkg   = module + "jobs/worker"
	goRedis     = "github.com/redis/go-redis"
	asynqModule = "github.com/hibiken/asynq"
)

// forbidden reports the packages of pkgs that start with one of prefixes.
func forbidden(pkgs []string, prefixes ...string) []string {
	var out []string
	for _, p := range pkgs {
		for _, f := range prefixes {
			if p == f || strings.HasPrefix(p, f+"/") {
				out = append(out, p)
			}
		}
	}
	return out
}

// TestTaskContractHasNoRuntimeAndNoRedis keeps jobs/tasks (and the alerter
// that enqueues through it) what enqueueing code can import: no worker
// runtime, no coordination state, and no Redis client of its own. (asynq
// itself uses go-redis, so Redis is checked among the direct imports.)
func TestTaskContractHasNoRuntimeAndNoRedis(t *testing.T) {
	t.Parallel()
	contract := []string{"./jobs/tasks", "./jobs/alert"}
	deps := goList(t, append([]string{"-deps", "-f", "{{.ImportPath}}"}, contract...)...)
	if bad := forbidden(deps, workerPkg, module+"jobs/coord", module+"jobs/scheduling"); len(bad) > 0 {
		t.Errorf("the task contract depends on %v; it must not need the worker runtime or Redis state", bad)
	}
	imports := goList(t, append([]string{"-f", "{{join .Imports \" \"}}"}, contract...)...)
	if bad := forbidden(imports, goRedis); len(bad) > 0 {
		t.Errorf("the task contract imports %v; Redis belongs in jobs/coord", bad)
	}
}

// TestPolicyHasNoQueueAndNoRedis keeps jobs/policy plain functions.
func TestPolicyHasNoQueueAndNoRedis(t *testing.T) {
	t.Parallel()
	deps := goList(t, "-deps", "-f", "{{.ImportPath}}", "./jobs/policy")
	if bad := forbidden(deps, asynqModule, goRedis); len(bad) > 0 {
		t.Errorf("jobs/policy depends on %v; policy decides, it neither queues nor stores", bad)
	}
}

// TestEnqueuersDoNotImportTheWorkerRuntime: the API and the scheduling code
// enqueue through the contract only. The scheduler command runs one worker
// kind, webhook delivery (so that alerts go out when every worker is
// down), and may use nothing else of the runtime.
func TestEnqueuersDoNotImportTheWorkerRuntime(t *testing.T) {
	t.Parallel()
	deps := goList(t, "-deps", "-f", "{{.ImportPath}}", "./handlers/...", "./jobs/scheduling")
	if bad := forbidden(deps, workerPkg); len(bad) > 0 {
		t.Errorf("handlers/ or jobs/scheduling depend on %v; enqueue through jobs/tasks", bad)
	}
	allowed := []string{"Runtime", "ProcessID", "AlertWorker", "NewAlertServer"}
	walkGoFiles(t, func(rel string, fset *token.FileSet, f *ast.File) {
		if !strings.HasPrefix(rel, "cmd/scheduler/") {
			return
		}
		name := ""
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == workerPkg {
				name = "worker"
				if imp.Name != nil {
					name = imp.Name.Name
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && name != "" {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == name && !slices.Contains(allowed, sel.Sel.Name) {
					t.Errorf("%s: the scheduler uses %s.%s; it may run only alert delivery", fset.Position(sel.Pos()), name, sel.Sel.Name)
				}
			}
			return true
		})
	})
}

// TestRedisKeysOnlyInCoordKeys keeps every Redis key of ours in
// jobs/coord/keys.go, where their hash tags are explained: a string literal
// that starts a key ("pgbackup:" and no space; messages such as
// "pgbackup: ..." are not keys) anywhere else fails. Tests may name keys.
func TestRedisKeysOnlyInCoordKeys(t *testing.T) {
	t.Parallel()
	walkGoFiles(t, func(rel string, fset *token.FileSet, f *ast.File) {
		if rel == "jobs/coord/keys.go" || strings.HasSuffix(rel, "_test.go") {
			return
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if v, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(v, "pgbackup:") && !strings.HasPrefix(v, "pgbackup: ") && v != "pgbackup:" {
				t.Errorf("%s: Redis key literal %s; build keys in jobs/coord/keys.go", fset.Position(lit.Pos()), lit.Value)
			}
			return true
		})
	})
}
