#!/usr/bin/env bash
# Body of `make test`: installs the test bench's tools if missing, starts a
# private PostgreSQL/Redis/MinIO, runs the Go tests against it, stops it.
#   scripts/test.sh [go test args...]      e.g. scripts/test.sh -run TestBackup -v
#   GO_TEST_ARGS='-run X' scripts/test.sh  (appended after the arguments)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/testbench.sh install

export PGBACKUP_TEST_REQUIRED=1
GO="$(command -v go || echo /usr/local/go/bin/go)"
# GO_TEST_ARGS is split on whitespace on purpose.
# shellcheck disable=SC2086
exec scripts/with-testbench.sh "$GO" test -count=1 -timeout 20m ./... "$@" ${GO_TEST_ARGS:-}
