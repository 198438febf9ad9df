#!/usr/bin/env bash
# Test bench for pgbackup: a private PostgreSQL, Redis and MinIO on free
# loopback ports, all state inside one scratch directory.
#
#   testbench.sh install              install what is missing (apt as root, MinIO via go install)
#   testbench.sh start DIR            start the three services, write DIR/env
#   testbench.sh stop DIR             stop them, remove DIR (unless KEEP_TESTBENCH=1)
#   testbench.sh svc-stop NAME DIR    stop one service (NAME: postgres, redis, minio)
#   testbench.sh svc-start NAME DIR   start it again on the same port with the same data
#   testbench.sh env DIR              print DIR/env
#
# It never touches a system PostgreSQL or Redis: every service listens on
# 127.0.0.1 on a random free port, with its own socket directory and data.
set -euo pipefail

MINIO_MODULE="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
CACHE="${PGBACKUP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgbackup-testbench}"
MINIO_BIN="$CACHE/bin/minio"
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib.sh
. "$(dirname "$SELF")/lib.sh"
MARKER=".pgbackup-testbench"
PG_USER=autograph
PG_DB=autograph
MINIO_USER=pgbackup-test

log() { printf 'testbench: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }
randhex() { od -An -tx1 -N"${1:-16}" /dev/urandom | tr -d ' \n'; }

# Newest /usr/lib/postgresql/<N>/bin holding initdb; else the dir of initdb on PATH.
pg_bin_dir() {
	local d best=""
	while IFS= read -r d; do
		[ -x "$d/initdb" ] && best="$d"
	done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
	if [ -z "$best" ] && have initdb; then
		best="$(dirname "$(command -v initdb)")"
	fi
	printf '%s' "$best"
}

find_go() {
	if have go; then command -v go
	elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
	else return 1
	fi
}

# ---------------------------------------------------------------- install
cmd_install() {
	local pgbin missing=() pkgs=()
	pgbin="$(pg_bin_dir)"
	if [ -z "$pgbin" ]; then missing+=(initdb); pkgs+=(postgresql); fi
	have redis-server || { missing+=(redis-server); pkgs+=(redis-server); }
	if ! have pg_dump && ! [ -x "$pgbin/pg_dump" ]; then missing+=(pg_dump); pkgs+=(postgresql-client); fi
	if ! have psql && ! [ -x "$pgbin/psql" ]; then missing+=(psql); pkgs+=(postgresql-client); fi
	have runuser || { missing+=(runuser); pkgs+=(util-linux); }
	have curl || { missing+=(curl); pkgs+=(curl); }
	if [ "${#missing[@]}" -gt 0 ]; then
		if is_root && have apt-get; then
			# postgresql and redis-server are always asked for together (as documented).
			pkgs+=(postgresql redis-server)
			mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
			log "missing: ${missing[*]}; installing: ${pkgs[*]}"
			apt-get update
			DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}"
		else
			die "missing: ${missing[*]}. Install them first, e.g. as root:
    apt-get update && apt-get install -y postgresql postgresql-client redis-server curl"
		fi
		[ -n "$(pg_bin_dir)" ] || die "initdb still not found under /usr/lib/postgresql/*/bin"
	fi

	if [ ! -x "$MINIO_BIN" ]; then
		local go
		go="$(find_go)" || die "go is not installed: it is needed to build MinIO ($MINIO_MODULE)"
		mkdir -p "$CACHE/bin"
		# One build at a time (two `make test` in parallel share the cache).
		exec 8>"$CACHE/build.lock"
		if have flock; then flock 8; fi
		if [ ! -x "$MINIO_BIN" ]; then
			log "building MinIO into $MINIO_BIN (takes ~7 minutes the first time)..."
			GOBIN="$CACHE/bin" "$go" install "$MINIO_MODULE" || die "building MinIO failed"
			log "MinIO built"
		fi
		exec 8>&-
	fi
}

# ---------------------------------------------------------------- helpers
USED_PORTS=" "
DIR=""
PG_BIN="" PG_DIR="" PG_PORT="" PG_PASSWORD="" PG_RELOCATED=""
REDIS_PORT="" MINIO_PORT="" MINIO_CONSOLE_PORT="" MINIO_PASSWORD=""

port_in_use() {
	local p="$1"
	if have ss; then
		[ -n "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
	fi
}

# Sets variable $1 (and records it in DIR/state) to a random port in
# 20000-60999 that no socket uses and that this run did not hand out yet.
pick_port() {
	local i p
	for i in $(seq 1 200); do
		p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 41000 ))
		case "$USED_PORTS" in *" $p "*) continue ;; esac
		if ! port_in_use "$p"; then
			USED_PORTS="$USED_PORTS$p "
			state_set "$1" "$p"
			return 0
		fi
		: "$i"
	done
	die "no free port found in 20000-60999"
}

# Runs a command as the postgres user when we are root (initdb/postgres refuse root).
as_pg() {
	if is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# True when $1 is a live process that belongs to this bench: its command line
# mentions $2 or its working directory is under $2. Guards against pid reuse.
pid_ours() {
	local pid="$1" dir="$2" cwd
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	[ -d /proc ] || return 0
	cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
	case "$cwd" in "$dir"|"$dir"/*) return 0 ;; esac
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir"
}

# alive() comes from lib.sh.

# Waits up to 10 s for pid $1 to exit, then SIGKILLs it.
wait_gone() {
	local pid="$1" name="$2" i
	for i in $(seq 1 100); do
		alive "$pid" || return 0
		sleep 0.1
		: "$i"
	done
	log "$name (pid $pid) did not exit after 10 s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		alive "$pid" || return 0
		sleep 0.1
	done
	log "$name (pid $pid) still alive after SIGKILL"
}

kill_wait() {
	kill -TERM "$1" 2>/dev/null || return 0
	wait_gone "$1" "$2"
}

show_log() {
	local f="$1"
	if [ -f "$f" ]; then
		log "---- last lines of $f ----"
		tail -n 30 "$f" >&2 || true
		log "----"
	fi
}

http_ok() {
	local url="$1"
	if have curl; then
		curl -fsS --max-time 3 -o /dev/null "$url" 2>/dev/null
	else
		# minimal HTTP GET over bash /dev/tcp; url is http://HOST:PORT/PATH
		local rest host port path line
		rest="${url#http://}"; host="${rest%%/*}"; path="/${rest#*/}"
		port="${host##*:}"; host="${host%:*}"
		(
			exec 3<>"/dev/tcp/$host/$port" || exit 1
			printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' "$path" "$host" "$port" >&3
			IFS= read -r -t 3 line <&3 || exit 1
			[[ "$line" =~ ^HTTP/1\.[01]\ 200 ]]
		) 2>/dev/null
	fi
}

redis_ping() {
	local port="$1" line
	if have redis-cli; then
		# timeout: a foreign listener on the port may never answer
		[ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]
	else
		(
			exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
			printf 'PING\r\n' >&3
			IFS= read -r -t 2 line <&3 || exit 1
			[[ "$line" == +PONG* ]]
		) 2>/dev/null
	fi
}

abs_dir() {
	# absolute, symlink-free path of an existing directory
	(cd "$1" && pwd -P)
}

# State kept in DIR/state (sourceable, written as start goes on): ports,
# passwords, paths. DIR/env is derived from it at the end of start.
state_set() {
	local name="$1" value="$2"
	printf '%s=%q\n' "$name" "$value" >>"$DIR/state"
	printf -v "$name" '%s' "$value"
}

load_state() {
	PG_BIN="" PG_DIR="" PG_PORT="" PG_PASSWORD="" PG_RELOCATED=""
	REDIS_PORT="" REDIS_APPENDONLY="" MINIO_PORT="" MINIO_CONSOLE_PORT="" MINIO_PASSWORD=""
	# shellcheck disable=SC1091
	[ -f "$DIR/state" ] && . "$DIR/state"
	if [ -z "$PG_DIR" ] && [ -e "$DIR/pg" ]; then
		PG_DIR="$(abs_dir "$DIR/pg")"
	fi
	return 0
}

set_dir() {
	[ -n "${1:-}" ] || die "missing DIR argument"
	DIR="$1"
}

# ---------------------------------------------------------------- postgres
pg_start_server() {
	# -o is run through /bin/sh by pg_ctl: quote the socket path
	as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -t 60 -l "$PG_DIR/log" \
		-o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k '$PG_DIR/sock' -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=100" \
		start >/dev/null
}

pg_stop_server() {
	[ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
	local pid
	pid="$(head -n1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)"
	if ! pid_ours "$pid" "$PG_DIR"; then
		return 0 # stale pid file
	fi
	if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/pg_ctl" ] &&
		as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
		return 0
	fi
	log "pg_ctl stop failed; killing postgres pid $pid"
	kill_wait "$pid" postgres
}

pg_init() {
	PG_BIN="$(pg_bin_dir)"
	[ -n "$PG_BIN" ] || die "initdb not found (run: $SELF install)"
	state_set PG_BIN "$PG_BIN"

	local pgdir="$DIR/pg"
	if is_root; then
		id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run PostgreSQL as"
		have runuser || die "runuser is missing (run: $SELF install)"
	fi
	# The socket path must fit in sun_path (107 bytes), and as root the
	# postgres user must be able to reach DIR; otherwise keep the PostgreSQL
	# files in a directory of their own under /tmp, linked from DIR/pg.
	local sockpath="$pgdir/sock/.s.PGSQL.65535" relocate=""
	[ "${#sockpath}" -le 100 ] || relocate=1
	if is_root && ! runuser -u postgres -- test -x "$DIR" 2>/dev/null; then relocate=1; fi
	if [ -n "$relocate" ]; then
		pgdir="$(mktemp -d /tmp/pgbackup-tb-pg.XXXXXX)"
		chmod 755 "$pgdir"
		ln -s "$pgdir" "$DIR/pg"
		state_set PG_RELOCATED "$pgdir"
	else
		mkdir -p "$pgdir"
	fi
	state_set PG_DIR "$pgdir"
	mkdir -p "$PG_DIR/sock"
	if is_root; then chown -R postgres: "$PG_DIR"; fi

	local locale=C.UTF-8
	if have locale && ! locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale=C; fi
	if ! as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" --auth-local=trust --auth-host=scram-sha-256 \
		-U postgres -E UTF8 --locale="$locale" --no-sync >"$PG_DIR/initdb.log" 2>&1; then
		if [ "$locale" != C ]; then
			log "initdb with --locale=$locale failed; retrying with --locale=C"
			rm -rf "$PG_DIR/data"
			as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" --auth-local=trust --auth-host=scram-sha-256 \
				-U postgres -E UTF8 --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
				{ show_log "$PG_DIR/initdb.log"; LOGS_SHOWN=1; die "initdb failed"; }
		else
			show_log "$PG_DIR/initdb.log"; LOGS_SHOWN=1; die "initdb failed"
		fi
	fi

	local attempt
	for attempt in 1 2 3 4 5; do
		pick_port PG_PORT
		if pg_start_server 2>>"$PG_DIR/pg_ctl.log"; then
			break
		fi
		if [ "$attempt" -lt 5 ] && grep -qiE 'could not (bind|create listen)|already in use' "$PG_DIR/log" 2>/dev/null; then
			log "PostgreSQL port $PG_PORT taken, retrying on another port"
			continue
		fi
		show_log "$PG_DIR/pg_ctl.log"; show_log "$PG_DIR/log"; LOGS_SHOWN=1
		die "PostgreSQL failed to start"
	done

	state_set PG_PASSWORD "$(randhex 16)"
	# The password goes in through stdin, never on a command line (it is hex).
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR/sock" -p "$PG_PORT" -U postgres -d postgres \
		<<SQL >/dev/null || die "creating role/database in PostgreSQL failed"
\\set pw '$PG_PASSWORD'
CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD :'pw';
CREATE DATABASE $PG_DB OWNER $PG_USER;
SQL
	log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
}

# ---------------------------------------------------------------- redis
redis_launch() {
	mkdir -p "$DIR/redis"
	# TESTBENCH_REDIS_PERSIST=1 at start keeps the queue across svc-stop/svc-start
	# (an append-only file), for tests of a Redis restart under load.
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly "${REDIS_APPENDONLY:-no}" \
		--dir "$DIR/redis" --daemonize yes --pidfile "$DIR/redis/redis.pid" \
		--logfile "$DIR/redis/redis.log" --maxmemory-policy noeviction >>"$DIR/redis/stderr.log" 2>&1
}

redis_wait() {
	local i pid
	for i in $(seq 1 100); do
		redis_ping "$REDIS_PORT" && return 0
		# fail fast when it already gave up (e.g. port taken)
		grep -qi 'already in use' "$DIR/redis/redis.log" 2>/dev/null && return 1
		pid="$(cat "$DIR/redis/redis.pid" 2>/dev/null || true)"
		if [ -n "$pid" ] && ! alive "$pid"; then return 1; fi
		sleep 0.1
		: "$i"
	done
	return 1
}

# Pid of the bench's redis or minio ($1), if it runs (checked against DIR).
svc_pid() {
	local pid
	pid="$(cat "$DIR/$1/$1.pid" 2>/dev/null || true)"
	if pid_ours "$pid" "$DIR/$1"; then echo "$pid"; fi
}

# Stops the bench's redis or minio ($1).
svc_kill() {
	local pid
	pid="$(svc_pid "$1")"
	[ -z "$pid" ] || kill_wait "$pid" "$1"
	rm -f "$DIR/$1/$1.pid"
}

redis_init() {
	have redis-server || die "redis-server not found (run: $SELF install)"
	if [ -n "${TESTBENCH_REDIS_PERSIST:-}" ]; then state_set REDIS_APPENDONLY yes; fi
	local attempt
	for attempt in 1 2 3 4 5; do
		pick_port REDIS_PORT
		if redis_launch && redis_wait; then
			log "Redis on 127.0.0.1:$REDIS_PORT"
			return 0
		fi
		if [ "$attempt" -lt 5 ] && cat "$DIR/redis/redis.log" "$DIR/redis/stderr.log" 2>/dev/null | grep -qi 'already in use'; then
			log "Redis port $REDIS_PORT taken, retrying on another port"
			svc_kill redis
			: >"$DIR/redis/redis.log"; : >"$DIR/redis/stderr.log"
			continue
		fi
		break
	done
	show_log "$DIR/redis/stderr.log"; show_log "$DIR/redis/redis.log"; LOGS_SHOWN=1
	die "Redis failed to start"
}

# ---------------------------------------------------------------- minio
minio_launch() {
	mkdir -p "$DIR/minio/data"
	[ -x "$MINIO_BIN" ] || die "MinIO binary $MINIO_BIN is missing (run: $SELF install)"
	# cd into DIR/minio so the process is recognisable by its cwd too.
	(
		cd "$DIR/minio"
		MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" MINIO_BROWSER=off \
			MINIO_UPDATE=off \
			nohup "$MINIO_BIN" server "$DIR/minio/data" \
			--address "127.0.0.1:$MINIO_PORT" --console-address "127.0.0.1:$MINIO_CONSOLE_PORT" \
			</dev/null >>"$DIR/minio/minio.log" 2>&1 &
		echo $! >"$DIR/minio/minio.pid"
	)
}

# 0: healthy; 1: timed out; 2: process died
minio_wait() {
	local i pid
	pid="$(cat "$DIR/minio/minio.pid")"
	for i in $(seq 1 300); do
		http_ok "http://127.0.0.1:$MINIO_PORT/minio/health/live" && return 0
		kill -0 "$pid" 2>/dev/null || return 2
		sleep 0.2
		: "$i"
	done
	return 1
}

minio_init_launch() {
	state_set MINIO_BIN "$MINIO_BIN"
	state_set MINIO_PASSWORD "$(randhex 20)"
	pick_port MINIO_PORT
	pick_port MINIO_CONSOLE_PORT
	minio_launch
}

minio_init_wait() {
	local attempt rc
	for attempt in 1 2 3 4 5; do
		rc=0
		minio_wait || rc=$?
		if [ "$rc" -eq 0 ]; then
			log "MinIO on 127.0.0.1:$MINIO_PORT"
			return 0
		fi
		if [ "$rc" -eq 2 ] && [ "$attempt" -lt 5 ] && grep -qi 'already in use' "$DIR/minio/minio.log" 2>/dev/null; then
			log "MinIO port $MINIO_PORT or $MINIO_CONSOLE_PORT taken, retrying on other ports"
			svc_kill minio
			: >"$DIR/minio/minio.log"
			pick_port MINIO_PORT
			pick_port MINIO_CONSOLE_PORT
			minio_launch
			continue
		fi
		break
	done
	show_log "$DIR/minio/minio.log"; LOGS_SHOWN=1
	die "MinIO failed to become healthy"
}

# ---------------------------------------------------------------- start/stop
write_env() {
	local tmp="$DIR/env.tmp"
	{
		printf 'export PGBACKUP_TEST_DIR=%q\n' "$DIR"
		printf 'export PGBACKUP_TEST_PG_HOST=%q\n' 127.0.0.1
		printf 'export PGBACKUP_TEST_PG_PORT=%q\n' "$PG_PORT"
		printf 'export PGBACKUP_TEST_PG_USER=%q\n' "$PG_USER"
		printf 'export PGBACKUP_TEST_PG_PASSWORD=%q\n' "$PG_PASSWORD"
		printf 'export PGBACKUP_TEST_PG_DB=%q\n' "$PG_DB"
		printf 'export PGBACKUP_TEST_PG_SOCKET=%q\n' "$1"
		printf 'export PGBACKUP_TEST_PG_BIN=%q\n' "$PG_BIN"
		printf 'export PGBACKUP_TEST_REDIS_ADDR=%q\n' "127.0.0.1:$REDIS_PORT"
		printf 'export PGBACKUP_TEST_MINIO_ENDPOINT=%q\n' "http://127.0.0.1:$MINIO_PORT"
		printf 'export PGBACKUP_TEST_MINIO_USER=%q\n' "$MINIO_USER"
		printf 'export PGBACKUP_TEST_MINIO_PASSWORD=%q\n' "$MINIO_PASSWORD"
		printf 'export PGBACKUP_TEST_TESTBENCH=%q\n' "$SELF"
	} >"$tmp"
	chmod 600 "$tmp"
	mv "$tmp" "$DIR/env"
}

stop_all() {
	load_state
	# MinIO and Redis each take 1-2 s to exit: signal both, then wait.
	local mpid rpid
	mpid="$(svc_pid minio)"
	rpid="$(svc_pid redis)"
	[ -z "$mpid" ] || kill -TERM "$mpid" 2>/dev/null || true
	[ -z "$rpid" ] || kill -TERM "$rpid" 2>/dev/null || true
	pg_stop_server
	[ -z "$mpid" ] || wait_gone "$mpid" minio
	[ -z "$rpid" ] || wait_gone "$rpid" redis
	rm -f "$DIR/minio/minio.pid" "$DIR/redis/redis.pid"
}

START_OK=0
LOGS_SHOWN=0
on_start_exit() {
	[ "$START_OK" -eq 1 ] && return 0
	log "start failed; stopping what was started"
	if [ "$LOGS_SHOWN" -eq 0 ]; then
		local f
		for f in "$DIR/pg/initdb.log" "$DIR/pg/pg_ctl.log" "$DIR/pg/log" "$DIR/redis/stderr.log" "$DIR/redis/redis.log" "$DIR/minio/minio.log"; do
			show_log "$f"
		done
	fi
	stop_all || true
	log "logs kept in $DIR; remove with: $SELF stop $DIR"
}

cmd_start() {
	set_dir "${1:-}"
	mkdir -p "$DIR"
	DIR="$(abs_dir "$DIR")"
	if [ -e "$DIR/$MARKER" ]; then
		die "$DIR already holds a test bench; run '$SELF stop $DIR' first"
	fi
	if [ -n "$(ls -A "$DIR")" ]; then
		die "$DIR is not empty and is not a test bench directory"
	fi
	touch "$DIR/$MARKER"
	chmod 755 "$DIR"
	: >"$DIR/state"
	chmod 600 "$DIR/state"
	trap on_start_exit EXIT

	local t0=$SECONDS
	# MinIO takes longest to come up: launch it first, wait for it last.
	minio_init_launch
	pg_init
	redis_init
	minio_init_wait

	local sock="$DIR/pg/sock"
	[ -z "$PG_RELOCATED" ] || sock="$PG_DIR/sock"
	write_env "$sock"
	START_OK=1
	trap - EXIT
	log "bench up in $((SECONDS - t0)) s; source $DIR/env"
}

cmd_stop() {
	set_dir "${1:-}"
	[ -d "$DIR" ] || return 0
	DIR="$(abs_dir "$DIR")"
	if [ ! -e "$DIR/$MARKER" ]; then
		die "$DIR is not a test bench directory (no $MARKER); not touching it"
	fi
	stop_all
	if [ "${KEEP_TESTBENCH:-0}" = 1 ]; then
		log "stopped; kept $DIR (KEEP_TESTBENCH=1)"
		return 0
	fi
	case "$PG_RELOCATED" in
	/tmp/pgbackup-tb-pg.*) rm -rf -- "$PG_RELOCATED" ;;
	esac
	rm -rf -- "$DIR"
	log "stopped and removed $DIR"
}

bench_dir() {
	set_dir "${1:-}"
	[ -d "$DIR" ] || die "$DIR does not exist"
	DIR="$(abs_dir "$DIR")"
	[ -f "$DIR/env" ] || die "$DIR has no env file: was the bench started?"
	load_state
}

cmd_svc_stop() {
	local name="${1:-}"
	bench_dir "${2:-}"
	case "$name" in
	postgres) pg_stop_server ;;
	redis) svc_kill redis ;;
	minio) svc_kill minio ;;
	*) die "unknown service '$name' (postgres, redis, minio)" ;;
	esac
	log "$name stopped"
}

cmd_svc_start() {
	local name="${1:-}"
	bench_dir "${2:-}"
	case "$name" in
	postgres)
		local pid=""
		[ -f "$PG_DIR/data/postmaster.pid" ] && pid="$(head -n1 "$PG_DIR/data/postmaster.pid")"
		if pid_ours "$pid" "$PG_DIR"; then log "postgres already running"; return 0; fi
		if ! pg_start_server 2>>"$PG_DIR/pg_ctl.log"; then
			show_log "$PG_DIR/pg_ctl.log"; show_log "$PG_DIR/log"; die "PostgreSQL failed to start on port $PG_PORT"
		fi
		;;
	redis)
		if [ -f "$DIR/redis/redis.pid" ] && pid_ours "$(cat "$DIR/redis/redis.pid")" "$DIR/redis"; then
			log "redis already running"; return 0
		fi
		if ! { redis_launch && redis_wait; }; then
			show_log "$DIR/redis/stderr.log"; show_log "$DIR/redis/redis.log"; die "Redis failed to start on port $REDIS_PORT"
		fi
		;;
	minio)
		if [ -f "$DIR/minio/minio.pid" ] && pid_ours "$(cat "$DIR/minio/minio.pid")" "$DIR/minio"; then
			log "minio already running"; return 0
		fi
		minio_launch
		if ! minio_wait; then
			show_log "$DIR/minio/minio.log"; die "MinIO failed to start on port $MINIO_PORT"
		fi
		;;
	*) die "unknown service '$name' (postgres, redis, minio)" ;;
	esac
	log "$name started"
}

cmd_env() {
	bench_dir "${1:-}"
	cat "$DIR/env"
}

usage() {
	sed -n '2,11p' "$SELF" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

main() {
	local cmd="${1:-}"
	[ $# -gt 0 ] && shift
	case "$cmd" in
	install) cmd_install ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	svc-stop) cmd_svc_stop "$@" ;;
	svc-start) cmd_svc_start "$@" ;;
	env) cmd_env "$@" ;;
	*) usage ;;
	esac
}

main "$@"
