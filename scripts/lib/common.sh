# shellcheck shell=bash
# Helpers for every script under scripts/. Sourced, never run; from the repository root, after
# setting PROG (the prefix of the script's messages; default: the script's name):
#
#   PROG=capture-lab
#   # shellcheck source=scripts/lib/common.sh
#   . scripts/lib/common.sh
#
# Sets
#   REPO                          the repository's root (absolute)
#   PY                            /usr/bin/python3: Debian's, where python3-scapy lives,
#                                 never a pyenv or venv python3 that PATH may find first
#   SWLAB                         the lab's Python package: "$PY" "$SWLAB" COMMAND ...
#                                 (scripts/swlab; `"$PY" "$SWLAB" help` lists the commands)
#   RELEASE                       where cargo build --release puts the binaries
#                                 (CARGO_TARGET_DIR respected, made absolute)
# and defines
#   die MSG...                    "PROG: MSG" on stderr, exit 2
#   usage                         print the script's header comment (its --help)
#   need_root WHY                 die unless root: "needs root (WHY)"
#   need_cmds CMD...              die naming the first CMD that is not installed
#   need_bins FILE...             die naming the first FILE that is not executable (a release
#                                 binary: cargo build --release)
#   wait_for SECONDS CMD...       poll CMD (its output discarded) every 0.1 s until it
#                                 succeeds; status 1 if it did not within SECONDS
#   stop_pid PID [SECONDS [SIG]]  SIG (TERM) to PID, up to SECONDS (3) for it to exit, then
#                                 KILL, and reap it if it is a child; nothing for an empty PID
#                                 or one that is gone
#   load_cargo_env                put rustup's cargo on PATH when it is not there yet
#
# They work under `set -euo pipefail`: only wait_for returns a status other than 0.

PROG=${PROG:-$(basename "$0" .sh)}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # PY, SWLAB and RELEASE are for the scripts that source this
PY=/usr/bin/python3
# shellcheck disable=SC2034
SWLAB=$REPO/scripts/swlab
RELEASE=${CARGO_TARGET_DIR:-target}
[[ $RELEASE == /* ]] || RELEASE=$REPO/$RELEASE
# shellcheck disable=SC2034
RELEASE=$RELEASE/release

die() {
	echo "$PROG: $*" >&2
	exit 2
}

# need OPTION "$@"-rest: an option's value is there (`--opt VALUE`).
need() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (try --help)"; }

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

need_root() {
	[[ $(id -u) -eq 0 ]] || die "needs root ($1)"
}

need_cmds() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "needs $t (scripts/install-deps.sh installs it)"
	done
}

need_bins() {
	local b
	for b in "$@"; do
		[[ -x $b ]] || die "$b not found; run cargo build --release first"
	done
}

wait_for() {
	local tries=$(($1 * 10))
	shift
	until "$@" >/dev/null 2>&1; do
		((--tries > 0)) || return 1
		sleep 0.1
	done
}

stop_pid() {
	local pid=$1 tries=$((${2:-3} * 10)) sig=${3:-TERM}
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null && ((tries-- > 0)); do sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

load_cargo_env() {
	if ! command -v cargo >/dev/null 2>&1 && [[ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]]; then
		# shellcheck source=/dev/null
		. "${CARGO_HOME:-$HOME/.cargo}/env"
	fi
}
