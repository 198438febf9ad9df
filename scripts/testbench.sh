#!/usr/bin/env bash
# Test bench for pgbackup: a private PostgreSQL, Redis and MinIO on free
# loopback ports, all state inside one scratch directory. The work is done
# by cmd/testbench (bin/testbench, built here); `testbench.sh` alone prints
# its usage:
#
#   testbench.sh install              install what is missing (apt as root, MinIO via go install)
#   testbench.sh start DIR            start the three services, write DIR/env
#   testbench.sh up DIR               the same, or start those of DIR's services that are down
#   testbench.sh stop DIR             stop them, remove DIR (unless KEEP_TESTBENCH=1)
#   testbench.sh svc-stop NAME DIR    stop one service (NAME: postgres, redis, minio)
#   testbench.sh svc-start NAME DIR   start it again on the same port with the same data
#   testbench.sh env DIR              print DIR/env
#   testbench.sh run [--] CMD...      run CMD against a bench of its own
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build_cmd testbench
exec "$ROOT/bin/testbench" "$@"
