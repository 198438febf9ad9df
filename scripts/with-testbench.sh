#!/usr/bin/env bash
# Usage: scripts/with-testbench.sh CMD [ARGS...]
# Starts a private test bench (PostgreSQL, Redis, MinIO) in a scratch
# directory, runs CMD with its PGBACKUP_TEST_* variables exported, stops the
# bench afterwards (also on Ctrl-C / SIGTERM, which reach CMD's whole
# process tree) and exits with CMD's status. KEEP_TESTBENCH=1 keeps the
# scratch directory (logs). This is `bin/testbench run`.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build_cmd testbench
exec "$ROOT/bin/testbench" run -- "$@"
