#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions below run from traps
# Usage: make demo   (or scripts/demo.sh)
#
# Runs the whole service on this machine, end to end: a private PostgreSQL,
# Redis and MinIO (scripts/testbench.sh) in a scratch directory, the API, two
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
# (PostgreSQL, Redis, curl, jq) with apt-get; MinIO is built with go install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
TESTBENCH="$ROOT/scripts/testbench.sh"
NONINTERACTIVE="${DEMO_NONINTERACTIVE:-0}"
POLL_TIMEOUT=180 # seconds a task may take before the demo gives up

if [ -t 1 ]; then B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' N=$'\033[0m'; else B="" G="" R="" N=""; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
say() { printf '    %s\n' "$*"; }
warn() { printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2; }
die() { warn "ERROR: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
randhex() { od -An -tx1 -N"${1:-16}" /dev/urandom | tr -d ' \n'; }

DEMO_DIR=""
BENCH_DIR=""
BENCH_STARTED=0
DEMO_OK=0
SLEEP_PID=""
# name:pid of every program this script started
PROCS=()

# alive() comes from lib.sh.

# Stops the programs: SIGTERM to all at once (workers hand running tasks
# back within WORKER_SHUTDOWN_TIMEOUT), SIGKILL whatever is left after 30 s.
stop_procs() {
	local p pid i left
	[ "${#PROCS[@]}" -gt 0 ] || return 0
	for p in "${PROCS[@]}"; do kill -TERM "${p#*:}" 2>/dev/null || true; done
	for i in $(seq 1 300); do
		left=0
		for p in "${PROCS[@]}"; do alive "${p#*:}" && left=1; done
		[ "$left" -eq 1 ] || break
		sleep 0.1
		: "$i"
	done
	for p in "${PROCS[@]}"; do
		pid="${p#*:}"
		if alive "$pid"; then
			warn "${p%%:*} (pid $pid) did not stop after 30 s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	PROCS=()
}

cleanup() {
	local rc=$?
	# Nothing may cut the cleanup short: not an error, not a second Ctrl-C,
	# not a closed output.
	set +e
	trap - EXIT
	trap '' INT TERM HUP
	[ -z "$SLEEP_PID" ] || kill "$SLEEP_PID" 2>/dev/null || true
	if [ "${#PROCS[@]}" -gt 0 ]; then
		step "Stopping the API, workers and scheduler"
		stop_procs
	fi
	if [ "$BENCH_STARTED" -eq 1 ]; then
		step "Stopping PostgreSQL, Redis and MinIO"
		# Into a file first: the bench's script stops at its first failed
		# write, and stderr may be a closed pipe by now.
		if ! "$TESTBENCH" stop "$BENCH_DIR" >"$DEMO_DIR/bench-stop.log" 2>&1; then
			warn "stopping the bench in $BENCH_DIR failed"
			rc=1
		fi
		cat "$DEMO_DIR/bench-stop.log" >&2
	fi
	if [ "$DEMO_OK" -eq 1 ]; then
		# A signal is the normal way to end a demo that worked.
		case "$rc" in 129 | 130 | 143) rc=0 ;; esac
	elif [ "$rc" -eq 0 ]; then
		rc=1
	fi
	if [ -n "$DEMO_DIR" ] && [ -d "$DEMO_DIR" ]; then
		if [ "${DEMO_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
			say "logs kept in $DEMO_DIR/logs (remove with: rm -rf $DEMO_DIR)"
		else
			rm -rf -- "$DEMO_DIR"
		fi
	fi
	if [ "$rc" -eq 0 ]; then
		printf '%sdemo stopped; nothing left running.%s\n' "$G" "$N"
	else
		warn "demo failed (exit $rc); everything it started is stopped"
	fi
	exit "$rc"
}

on_signal() {
	echo
	say "got SIG$1, stopping everything..."
	exit "$2"
}

trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP # the terminal was closed
# A write to a closed output (Ctrl-C also ends a `| tee` the demo is piped
# into) must fail like any other command, not kill this script before its
# cleanup ran.
trap '' PIPE

# ------------------------------------------------------------ prerequisites
find_go() {
	if have go; then command -v go
	elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
	else return 1
	fi
}

step "Checking prerequisites"
GO="$(find_go)" || die "Go is not installed; it is needed to build the service (see go.mod for the version)"
say "go: $("$GO" version)"
"$TESTBENCH" install
if ! have jq; then
	if is_root && have apt-get; then
		say "installing jq (used to read the API's JSON)"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
	else
		die "jq is missing; install it first (e.g. apt-get install jq)"
	fi
fi
have curl || die "curl is missing"

# ------------------------------------------------------------ bench
DEMO_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pgbackup-demo.XXXXXX")"
BENCH_DIR="$DEMO_DIR/bench"
LOGS="$DEMO_DIR/logs"
mkdir -p "$LOGS" "$DEMO_DIR/backups" "$DEMO_DIR/work"

step "Starting a private PostgreSQL, Redis and MinIO in $BENCH_DIR"
BENCH_STARTED=1
"$TESTBENCH" start "$BENCH_DIR"
# shellcheck disable=SC1091
. "$BENCH_DIR/env"

# ------------------------------------------------------------ build
step "Building bin/api, bin/worker, bin/scheduler, bin/pgbackup"
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o bin/ ./cmd/api ./cmd/worker ./cmd/scheduler ./cmd/pgbackup)
say "done"

# ------------------------------------------------------------ sample data
PSQL="$PGBACKUP_TEST_PG_BIN/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql)"
# The password travels in the environment only, never on a command line.
export PGPASSWORD="$PGBACKUP_TEST_PG_PASSWORD"
sql() { # sql DB [psql args...]: runs SQL from stdin or -c as the bench role
	local db="$1"
	shift
	"$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGBACKUP_TEST_PG_PORT" -U "$PGBACKUP_TEST_PG_USER" -d "$db" "$@"
}

step "Creating the sample database demo_source"
sql "$PGBACKUP_TEST_PG_DB" -c 'CREATE DATABASE demo_source'
sql demo_source <<'SQL'
CREATE TABLE customers (
	id         integer PRIMARY KEY,
	name       text NOT NULL,
	email      text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL
);
CREATE TABLE orders (
	id          integer PRIMARY KEY,
	customer_id integer NOT NULL REFERENCES customers(id),
	amount      numeric(10,2) NOT NULL,
	status      text NOT NULL,
	placed_at   timestamptz NOT NULL
);
CREATE INDEX orders_customer_id_idx ON orders(customer_id);
INSERT INTO customers
SELECT i, 'Customer ' || i, 'customer' || i || '@example.com',
       timestamptz '2024-01-01 00:00:00+00' + i * interval '37 minutes'
FROM generate_series(1, 2000) AS i;
INSERT INTO orders
SELECT i, 1 + (i * 7919) % 2000, round(((i * 104729) % 50000) / 100.0, 2),
       (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + i % 4],
       timestamptz '2024-02-01 00:00:00+00' + i * interval '11 minutes'
FROM generate_series(1, 5000) AS i;
ANALYZE customers;
ANALYZE orders;
SQL
TABLES=(customers orders)
for t in "${TABLES[@]}"; do
	say "$t: $(sql demo_source -tA -c "SELECT count(*) FROM $t") rows"
done

# ------------------------------------------------------------ configuration
port_in_use() {
	local p="$1"
	if have ss; then
		[ -n "$(ss -Htln "( sport = :$p )" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
	fi
}

pick_api_port() {
	local p i
	if [ -n "${DEMO_API_PORT:-}" ]; then
		port_in_use "$DEMO_API_PORT" && die "DEMO_API_PORT=$DEMO_API_PORT is in use"
		echo "$DEMO_API_PORT"
		return 0
	fi
	if ! port_in_use 8080; then echo 8080; return 0; fi
	for i in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 41000))
		if ! port_in_use "$p"; then echo "$p"; return 0; fi
		: "$i"
	done
	die "no free port for the API"
}

API_PORT="$(pick_api_port)"
API_URL="http://127.0.0.1:$API_PORT"
ADMIN_TOKEN="demo-admin-$(randhex 16)"
VIEWER_TOKEN="demo-viewer-$(randhex 16)"

# Every setting the programs read (configs/config.go); the demo listens on
# loopback only.
export POSTGRES_HOST=127.0.0.1
export POSTGRES_PORT="$PGBACKUP_TEST_PG_PORT"
export POSTGRES_USER="$PGBACKUP_TEST_PG_USER"
export POSTGRES_PASSWORD="$PGBACKUP_TEST_PG_PASSWORD"
export POSTGRES_DB=demo_source
export POSTGRES_SSLMODE=disable
export BACKUP_DIR="$DEMO_DIR/backups"
export WORK_DIR="$DEMO_DIR/work"
export MINIO_ENDPOINT="$PGBACKUP_TEST_MINIO_ENDPOINT"
export MINIO_ROOT_USER="$PGBACKUP_TEST_MINIO_USER"
export MINIO_ROOT_PASSWORD="$PGBACKUP_TEST_MINIO_PASSWORD"
export REDIS_ADDR="$PGBACKUP_TEST_REDIS_ADDR"
export API_ADDR="127.0.0.1:$API_PORT"
export API_ADMIN_TOKENS="$ADMIN_TOKEN"
export API_VIEWER_TOKENS="$VIEWER_TOKEN"
export BACKUP_ENABLED=true
export BACKUP_INTERVAL_HOURS=24
export TASK_RETRY_DELAY=2s
# Short, so that Ctrl-C does not wait a minute for a running task.
export WORKER_SHUTDOWN_TIMEOUT=10s
export LOG_LEVEL=info
unset CONFIG_FILE PG_BIN_DIR API_AUTH_DISABLED BACKUP_SCHEDULE

# ------------------------------------------------------------ programs
start_proc() { # start_proc NAME BINARY [ARGS...]
	local name="$1"
	shift
	"$@" </dev/null >"$LOGS/$name.log" 2>&1 &
	PROCS+=("$name:$!")
	say "$name: pid $! (log $LOGS/$name.log)"
}

show_log() { # show_log NAME
	warn "---- last lines of $LOGS/$1.log ----"
	tail -n 20 "$LOGS/$1.log" >&2 || true
}

# Fails when one of the programs has exited.
check_procs() {
	local p
	for p in "${PROCS[@]}"; do
		if ! alive "${p#*:}"; then
			show_log "${p%%:*}"
			die "${p%%:*} (pid ${p#*:}) exited; see $LOGS/${p%%:*}.log"
		fi
	done
}

step "Starting the API, two workers and the scheduler"
start_proc api "$ROOT/bin/api"
start_proc worker-1 "$ROOT/bin/worker"
start_proc worker-2 "$ROOT/bin/worker"
start_proc scheduler "$ROOT/bin/scheduler"

ready=0
for i in $(seq 1 150); do
	check_procs
	if curl -fsS --max-time 2 -o /dev/null "$API_URL/readyz" 2>/dev/null; then ready=1; break; fi
	sleep 0.2
	: "$i"
done
[ "$ready" -eq 1 ] || { show_log api; die "the API did not become ready at $API_URL/readyz within 30 s"; }
say "API ready at $API_URL"

# ------------------------------------------------------------ API calls
# api METHOD PATH [JSON]: prints the body; fails on a non-2xx answer.
api() {
	local method="$1" path="$2" body="${3:-}" out code
	local args=(-sS --max-time 10 -X "$method" -H "Authorization: Bearer $ADMIN_TOKEN" -w '\n%{http_code}')
	[ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data "$body")
	out="$(curl "${args[@]}" "$API_URL$path")" || die "$method $path: curl failed"
	code="${out##*$'\n'}"
	out="${out%$'\n'*}"
	case "$code" in
	2??) printf '%s' "$out" ;;
	*) die "$method $path: HTTP $code: $out" ;;
	esac
}

# wait_task LABEL ID: prints each change of state, phase and bytes until the
# task completes; fails if it is archived (out of retries) or takes too long.
wait_task() {
	local label="$1" id="$2" t0=$SECONDS info line last="" state err
	while :; do
		check_procs
		info="$(api GET "/api/admin/tasks/$id")"
		state="$(jq -r '.state' <<<"$info")"
		line="$(jq -r '"state=\(.state)  phase=\(.progress.phase // "-")  bytes=\(.progress.bytes // 0)" + (if .worker then "  worker=\(.worker)" else "" end)' <<<"$info")"
		if [ "$line" != "$last" ]; then
			printf '    [%s %3ds] %s\n' "$label" "$((SECONDS - t0))" "$line"
			last="$line"
		fi
		err="$(jq -r '.error // ""' <<<"$info")"
		case "$state" in
		completed) return 0 ;;
		archived) die "$label task $id failed for good: $err" ;;
		retry) [ -z "$err" ] || say "  retrying after: $err" ;;
		esac
		[ $((SECONDS - t0)) -lt "$POLL_TIMEOUT" ] || die "$label task $id not done after $POLL_TIMEOUT s (state $state)"
		sleep 0.3
	done
}

step "Backing up demo_source (custom format, local directory and MinIO)"
say "POST /api/admin/backup/create"
resp="$(api POST /api/admin/backup/create '{"format":"custom","upload_to_minio":true}')"
BACKUP_NAME="$(jq -r '.backup_name' <<<"$resp")"
task="$(jq -r '.task_id' <<<"$resp")"
say "backup $BACKUP_NAME, task $task"
wait_task backup "$task"
say "result: $(api GET "/api/admin/tasks/$task" | jq -c '.result')"

step "Listing backups"
say "GET /api/admin/backup/list"
api GET /api/admin/backup/list | jq -r '"    \(.count) backup(s)", (.backups[] | "    \(.backup_name)  \(.format)  db=\(.database)  \(.size_bytes) bytes  in \(.locations | join(","))")'

step "Restoring $BACKUP_NAME from MinIO into a new database demo_restored"
say "POST /api/admin/backup/restore"
resp="$(api POST /api/admin/backup/restore "{\"backup_name\":\"$BACKUP_NAME\",\"download_from_minio\":true,\"target_database\":\"demo_restored\"}")"
task="$(jq -r '.task_id' <<<"$resp")"
say "task $task"
wait_task restore "$task"

step "Comparing demo_source with demo_restored"
mismatch=0
printf '    %-10s %12s %14s  %s\n' table demo_source demo_restored "content"
for t in "${TABLES[@]}"; do
	q="SELECT count(*) || ' ' || md5(coalesce(string_agg(x::text, ',' ORDER BY x.id), '')) FROM $t AS x"
	read -r n1 h1 <<<"$(sql demo_source -tA -c "$q")"
	read -r n2 h2 <<<"$(sql demo_restored -tA -c "$q")"
	same=identical
	if [ "$n1" != "$n2" ] || [ "$h1" != "$h2" ]; then same="${R}DIFFERENT${N}"; mismatch=1; fi
	printf '    %-10s %12s %14s  %s\n' "$t" "$n1" "$n2" "$same"
done
[ "$mismatch" -eq 0 ] || die "demo_restored differs from demo_source"
printf '    %sthe restored database matches the source%s\n' "$G" "$N"
DEMO_OK=1

# ------------------------------------------------------------ summary
cat >"$DEMO_DIR/demo.env" <<EOF
export PGBACKUP_URL=$API_URL
export ADMIN_TOKEN=$ADMIN_TOKEN
export VIEWER_TOKEN=$VIEWER_TOKEN
EOF
chmod 600 "$DEMO_DIR/demo.env"

step "The service is running"
cat <<EOF
    API:          $API_URL
    Backups page: $API_URL/ui/#token=$ADMIN_TOKEN
    Queue UI:     $API_URL/monitoring/
                  (the browser asks for a user name and password: any user
                  name, and the admin token as password; the viewer token
                  opens it read-only)
    Admin token:  $ADMIN_TOKEN
    Viewer token: $VIEWER_TOKEN

    In another shell:
      source $DEMO_DIR/demo.env
      curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" \$PGBACKUP_URL/api/admin/backup/list
      curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" -H 'Content-Type: application/json' \\
           -d '{"format":"custom"}' \$PGBACKUP_URL/api/admin/backup/create
      curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" \$PGBACKUP_URL/api/admin/tasks/TASK_ID
      curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" -H 'Content-Type: application/json' \\
           -d '{"backup_name":"$BACKUP_NAME","target_database":"demo_copy"}' \$PGBACKUP_URL/api/admin/backup/restore
      curl -s -X DELETE -H "Authorization: Bearer \$ADMIN_TOKEN" \$PGBACKUP_URL/api/admin/backup/$BACKUP_NAME

    PostgreSQL:   127.0.0.1:$PGBACKUP_TEST_PG_PORT, user $PGBACKUP_TEST_PG_USER, databases demo_source and demo_restored
                  (password: PGBACKUP_TEST_PG_PASSWORD in $BENCH_DIR/env)
    Logs:         $LOGS/api.log
                  $LOGS/worker-1.log
                  $LOGS/worker-2.log
                  $LOGS/scheduler.log
    Backups:      $BACKUP_DIR and MinIO bucket backups at $MINIO_ENDPOINT
EOF

if [ "$NONINTERACTIVE" = 1 ]; then
	step "DEMO_NONINTERACTIVE=1: stopping"
	exit 0
fi

printf '\n%sPress Ctrl-C to stop everything.%s\n' "$B" "$N"
while :; do
	# wait (unlike a foreground sleep) returns at once when a signal arrives.
	sleep 2 &
	SLEEP_PID=$!
	wait "$SLEEP_PID" || true
	SLEEP_PID=""
	check_procs
done
