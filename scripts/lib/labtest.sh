# shellcheck shell=bash
# Helpers shared by the lab scripts (scripts/test-control.sh, test-pktgen.sh, test-live.sh,
# pktgen.sh, bench-e2e.sh). Sourced, never run; not named test-*.sh, so scripts/test.sh does
# not take it for a test. From the repository root, after setting PROG (the prefix of the
# script's messages):
#
#   PROG=test-control
#   # shellcheck source=scripts/lib/labtest.sh
#   . scripts/lib/labtest.sh
#
#   die MSG...                    "PROG: MSG" on stderr, exit 2
#   usage                         print the script's header comment (its --help)
#   keep_or_help ARGS...          a lab test's arguments: --keep sets keep=1 (keep=0
#                                 otherwise), -h/--help prints usage and exits 0, anything
#                                 else dies
#   need_root WHY                 die unless root: "needs root (WHY)"
#   need_cmds CMD...              die naming the first CMD that is not installed
#   need_bins FILE...             die naming the first FILE that is not executable (a release
#                                 binary: cargo build --release)
#   wait_for SECONDS CMD...       poll CMD (its output discarded) every 0.1 s until it
#                                 succeeds; status 1 if it did not within SECONDS
#   stop_pid PID [SECONDS [SIG]]  SIG (TERM) to PID, up to SECONDS (3) for it to exit, then
#                                 KILL, and reap it if it is a child; nothing for an empty PID
#                                 or one that is gone
#   daemon_alive                  $DPID (the script's daemon) is set and running
#   lab_traps                     EXIT runs the script's `cleanup`; INT prints
#                                 "PROG: interrupted" and exits 130; TERM exits 143
#
# The cases of a PASS/FAIL lab test (test-control.sh, test-pktgen.sh), each a function
# case_NAME (dashes as underscores) that calls fail on a failure and sets DET to what it saw:
#
#   check CASE                    run case_CASE and report it with result and its seconds;
#                                 unless `daemon_free CASE` (the script's own; by default no
#                                 case) it fails when the daemon is not running before it or
#                                 died during it (a case that stops it clears DPID)
#   fail WHY...                   in a case: add WHY to the reasons it failed
#   result CASE ok|fail DETAIL    "  PASS CASE DETAIL" or FAIL, CASE in RESULT_WIDTH (18)
#                                 columns; counted in passed and failed
#   finish LINES                  the end of the run: the last LINES of the daemon's $LOG on a
#                                 failure, the seconds since $START, "N passed, N failed";
#                                 status 1 on a failure
#
# A lab (every process in its namespaces, then the namespaces) goes with
# `LAB=PREFIX scripts/lab.sh down`. The helpers work under `set -euo pipefail`: only
# wait_for, daemon_alive, daemon_free and finish return a status other than 0, as said.

PROG=${PROG:-$(basename "$0" .sh)}

die() {
	echo "$PROG: $*" >&2
	exit 2
}

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

# shellcheck disable=SC2034 # keep is the calling script's
keep_or_help() {
	local a
	keep=0
	for a in "$@"; do
		case $a in
		--keep) keep=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		*) die "unknown argument $a (try --help)" ;;
		esac
	done
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

daemon_alive() { [[ -n ${DPID:-} ]] && kill -0 "$DPID" 2>/dev/null; }

lab_traps() {
	trap cleanup EXIT
	trap 'echo; echo "$PROG: interrupted" >&2; exit 130' INT
	trap 'exit 143' TERM
}

passed=0
failed=0
RESULT_WIDTH=${RESULT_WIDTH:-18}
daemon_free() { false; }

check() {
	local c=$1 t0=$SECONDS fn
	fn=case_${c//-/_}
	WHY='' DET=''
	if ! daemon_free "$c" && ! daemon_alive; then
		result "$c" fail "the daemon is not running"
		return
	fi
	"$fn"
	if ! daemon_free "$c" && [[ -n ${DPID:-} ]] && ! daemon_alive; then
		fail "the daemon died"
	fi
	if [[ -z $WHY ]]; then
		result "$c" ok "$DET ($((SECONDS - t0))s)"
	else
		result "$c" fail "$WHY${DET:+ [$DET]} ($((SECONDS - t0))s)"
	fi
}

fail() { WHY="${WHY:+$WHY; }$*"; }

result() {
	if [[ $2 == ok ]]; then
		passed=$((passed + 1))
		printf '  PASS %-*s %s\n' "$RESULT_WIDTH" "$1" "$3"
	else
		failed=$((failed + 1))
		printf '  FAIL %-*s %s\n' "$RESULT_WIDTH" "$1" "$3"
	fi
}

finish() {
	if ((failed > 0)); then
		echo
		echo "$PROG: the daemon's log (last $1 lines):"
		tail -n "$1" "$LOG" | sed 's/^/  /'
	fi
	echo
	echo "$PROG: $((SECONDS - START))s"
	echo "$passed passed, $failed failed"
	((failed == 0))
}
