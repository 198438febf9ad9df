# shellcheck shell=bash
# Shared by the scripts in scripts/; source it, do not run it. Sets ROOT
# (the repository, absolute) and GO, and builds the Go commands that do
# the work: the scripts are entry points only.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
GO="$(command -v go || echo /usr/local/go/bin/go)"
if [ ! -x "$GO" ]; then
	echo "go is not installed; it is needed to build the test bench and the service (see go.mod for the version)" >&2
	exit 1
fi

# build_cmd NAME...: builds ./cmd/NAME into bin/NAME; quick when up to date.
build_cmd() {
	local name
	for name in "$@"; do
		(cd "$ROOT" && "$GO" build -o "bin/$name" "./cmd/$name") || exit 1
	done
}
