#!/usr/bin/env bash
# Body of `make bench`: makes sure the long-lived test bench in .testbench/
# runs (the one `make testbench-up` starts), builds bin/pgbackup and
# bin/bench, and runs the benchmark against it. Extra arguments go to
# bin/bench, e.g. scripts/bench.sh -keep.
#
# The bench is left running on purpose: its ~800 MB database takes a
# minute to generate and is reused by the next run. `make testbench-down`
# stops it and removes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd -P)"
BENCH_DIR="$ROOT/.testbench"
TESTBENCH="$ROOT/scripts/testbench.sh"

log() { printf 'bench: %s\n' "$*" >&2; }

"$TESTBENCH" install

if [ -e "$BENCH_DIR/env" ]; then
	log "reusing the test bench in $BENCH_DIR"
	# After a reboot the directory is there but the servers are not:
	# svc-start starts what is down and leaves what runs alone.
	for svc in postgres minio; do
		"$TESTBENCH" svc-start "$svc" "$BENCH_DIR" ||
			{ log "could not start $svc of the bench in $BENCH_DIR; remove it with 'make testbench-down' and run again"; exit 1; }
	done
else
	log "starting a test bench in $BENCH_DIR (kept after the run)"
	# testbench.sh keeps PostgreSQL's files under /tmp when the postgres
	# user cannot reach $BENCH_DIR (e.g. a checkout under /root).
	"$TESTBENCH" start "$BENCH_DIR"
fi
# shellcheck disable=SC1091
. "$BENCH_DIR/env"

GO="$(command -v go || echo /usr/local/go/bin/go)"
mkdir -p bin
"$GO" build -o bin/pgbackup ./cmd/pgbackup
"$GO" build -o bin/bench ./cmd/bench

rc=0
bin/bench -pgbackup bin/pgbackup "$@" || rc=$?

log "the test bench in $BENCH_DIR is still running, so the next 'make bench' reuses its database; 'make testbench-down' stops and removes it"
exit "$rc"
