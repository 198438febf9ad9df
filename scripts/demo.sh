#!/usr/bin/env bash
# Usage: make demo   (or scripts/demo.sh)
#
# Runs the whole service on this machine, end to end: a private PostgreSQL,
# Redis and MinIO (the test bench) in a scratch directory, the API, two
# workers and a scheduler built from this tree, a sample database
# demo_source, one backup and one restore of it into demo_restored through
# the API, and a comparison of the two databases. Then it prints the URLs
# and tokens and keeps everything running until Ctrl-C, which stops every
# process it started and removes the scratch directory.
#
#   DEMO_NONINTERACTIVE=1   do everything, then stop at once (exit 0 on success)
#   DEMO_KEEP=1             keep the scratch directory (logs, archives) at exit
#   DEMO_API_PORT=N         listen on N instead of 8080 (or a free port)
#
# Needs Go (to build) and, as root on Debian, installs what else is missing
# (PostgreSQL, Redis) with apt-get; MinIO is built with go install. The work
# is done by cmd/demo (bin/demo, built here).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
build_cmd demo
exec bin/demo "$@"
