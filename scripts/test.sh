#!/usr/bin/env bash
# Body of `make test`: installs the test bench's tools if missing, starts a
# private PostgreSQL/Redis/MinIO, runs the Go tests against it, stops it,
# then gives each fuzz target a short run (their committed corpora already
# ran as ordinary tests).
#   scripts/test.sh [go test args...]      e.g. scripts/test.sh -run TestBackup -v
#   GO_TEST_ARGS='-run X' scripts/test.sh  (appended after the arguments)
#   FUZZ_TIME=0 scripts/test.sh            skips the fuzz runs
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
build_cmd testbench
bin/testbench install

export PGBACKUP_TEST_REQUIRED=1
# The end-to-end tests build the binaries with the go on PATH.
PATH="$(dirname "$GO"):$PATH"
export PATH
# Files tests leave for a person to look at (the browser test's screenshot
# of a failure) go under test-output/_artifacts (go test -artifacts).
mkdir -p "$ROOT/test-output"
# GO_TEST_ARGS is split on whitespace on purpose.
# shellcheck disable=SC2086
bin/testbench run -- "$GO" test -count=1 -timeout 20m -artifacts -outputdir "$ROOT/test-output" ./... "$@" ${GO_TEST_ARGS:-}

# A count, not a duration: a duration races the fuzz coordinator's deadline
# on a loaded machine and fails with "context deadline exceeded" having
# found nothing (golang/go#51484); a count has no deadline to race.
FUZZ_TIME="${FUZZ_TIME:-20000x}"
if [ "$FUZZ_TIME" != "0" ]; then
	for target in "./jobs/engine FuzzValidateName" "./jobs/engine FuzzPlainScanner" "./handlers FuzzDecodeJSON" "./handlers FuzzCreateBackup"; do
		set -- $target
		echo "fuzz: $2 for $FUZZ_TIME"
		# Minimising each new interesting input may take 60 s by default, during
		# which nothing is fuzzed; a short run wants short minimisation.
		"$GO" test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZ_TIME" -fuzzminimizetime=200x -parallel=1 "$1"
	done
fi
