#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions below run from traps
# Usage: scripts/with-testbench.sh CMD [ARGS...]
# Starts a private test bench (PostgreSQL, Redis, MinIO) in a scratch
# directory, runs CMD with its PGBACKUP_TEST_* variables exported, stops the
# bench afterwards (also on Ctrl-C / SIGTERM) and exits with CMD's status.
# KEEP_TESTBENCH=1 keeps the scratch directory (logs) after the run.
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

TESTBENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/testbench.sh"
BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pgbackup-testbench.XXXXXX")"
CHILD=""

cleanup() {
	trap - EXIT INT TERM
	"$TESTBENCH" stop "$BENCH_DIR" || echo "with-testbench: stopping the bench in $BENCH_DIR failed" >&2
}

# Signals a process and all its descendants (go test's test binaries run
# under the go command).
kill_tree() {
	local sig="$1" pid="$2" c
	for c in $(pgrep -P "$pid" 2>/dev/null || true); do
		kill_tree "$sig" "$c"
	done
	kill "-$sig" "$pid" 2>/dev/null || true
}

on_signal() {
	local sig="$1" code="$2"
	echo "with-testbench: got SIG$sig, stopping" >&2
	if [ -n "$CHILD" ]; then
		kill_tree "$sig" "$CHILD"
		wait "$CHILD" 2>/dev/null || true
	fi
	cleanup
	exit "$code"
}

trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

"$TESTBENCH" start "$BENCH_DIR"
# shellcheck disable=SC1091
. "$BENCH_DIR/env"

# Run CMD in the background and wait for it so that a signal to this script
# is handled at once; keep CMD's standard input (bash would give a background
# job /dev/null).
exec 3<&0
"$@" <&3 3<&- &
CHILD=$!
exec 3<&-
rc=0
wait "$CHILD" || rc=$?
CHILD=""
exit "$rc"
