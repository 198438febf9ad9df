.PHONY: test testbench-up testbench-down bench build demo

# Runs the Go tests against a private PostgreSQL/Redis/MinIO test bench.
# Extra go test flags: make test GO_TEST_ARGS="-run TestX -v"
test:
	scripts/test.sh

# A long-lived bench in .testbench/ for manual use. Run again, it starts
# those of its servers that are down (after a reboot, say).
testbench-up:
	@scripts/testbench.sh install
	@scripts/testbench.sh up .testbench
	@echo "source .testbench/env   (make testbench-down removes it)"

testbench-down:
	scripts/testbench.sh stop .testbench

# Backup/restore benchmark on a generated ~800 MB database (not part of
# `make test`). Leaves the bench in .testbench/ running so the database is
# reused; `make testbench-down` removes it. Figures: BENCHMARKS.md.
# Extra bin/bench flags: make bench BENCH_ARGS="-repeat 2"
bench:
	scripts/bench.sh $(BENCH_ARGS)

# The five programs into bin/: api, worker, scheduler, archiver and the
# one-shot CLI.
build:
	CGO_ENABLED=0 go build -o bin/ ./cmd/api ./cmd/worker ./cmd/scheduler ./cmd/archiver ./cmd/pgbackup

# Runs everything locally (private PostgreSQL, Redis, MinIO; API, two
# workers, scheduler), backs up and restores a sample database, then keeps
# running until Ctrl-C. DEMO_NONINTERACTIVE=1 stops at once after the checks.
demo:
	scripts/demo.sh
