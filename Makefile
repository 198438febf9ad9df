.PHONY: test testbench-up testbench-down

# Runs the Go tests against a private PostgreSQL/Redis/MinIO test bench.
# Extra go test flags: make test GO_TEST_ARGS="-run TestX -v"
test:
	scripts/test.sh

# A long-lived bench in .testbench/ for manual use.
testbench-up:
	@scripts/testbench.sh install
	@if [ -e .testbench/env ]; then echo "test bench already up in .testbench/ (make testbench-down to remove it)"; \
	else scripts/testbench.sh start .testbench; fi
	@echo "source .testbench/env"

testbench-down:
	scripts/testbench.sh stop .testbench
