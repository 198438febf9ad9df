#!/usr/bin/env bash
# Body of `make bench`: makes sure the long-lived test bench in .testbench/
# runs (the one `make testbench-up` starts), builds bin/pgbackup, the
# service programs it starts and bin/bench, and runs the benchmark against
# it. Extra arguments go to bin/bench, e.g. scripts/bench.sh -keep.
#
# The bench is left running on purpose: its ~800 MB database takes a
# minute to generate and is reused by the next run. `make testbench-down`
# stops it and removes it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
log() { printf 'bench: %s\n' "$*" >&2; }

build_cmd testbench pgbackup bench api worker archiver
bin/testbench install
# Starts the bench, or, after a reboot (the directory is there but the
# servers are not), the servers that are down. PostgreSQL's files go under
# /tmp when the postgres user cannot reach .testbench (a checkout in /root).
bin/testbench up "$ROOT/.testbench" ||
	{ log "could not start the bench in $ROOT/.testbench; remove it with 'make testbench-down' and run again"; exit 1; }
# shellcheck disable=SC1091
. "$ROOT/.testbench/env"

rc=0
bin/bench -pgbackup bin/pgbackup "$@" || rc=$?

log "the test bench in $ROOT/.testbench is still running, so the next 'make bench' reuses its database; 'make testbench-down' stops and removes it"
exit "$rc"
