# shellcheck shell=bash
# Shell functions shared by the project's scripts; source it, do not run it.

# True while pid $1 runs. A zombie counts as gone: its parent may never
# reap it (some container inits are slow to), yet it holds no resources.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[ -r "/proc/$1/stat" ] || return 0
	local stat
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	stat="${stat##*) }"
	[ "${stat%% *}" != Z ]
}
