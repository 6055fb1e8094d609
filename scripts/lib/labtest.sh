# shellcheck shell=bash
# Helpers shared by the lab tests (scripts/test-control.sh, test-pktgen.sh, test-live.sh).
# Sourced, never run; not named test-*.sh, so scripts/test.sh does not take it for a test.
# From the repository root, after setting PROG (the prefix of the script's messages):
#
#   PROG=test-control
#   # shellcheck source=scripts/lib/labtest.sh
#   . scripts/lib/labtest.sh
#
# It sources scripts/lib/common.sh (REPO, PY, SWLAB, RELEASE, die, usage, need_root,
# need_cmds, need_bins, wait_for, stop_pid) and scripts/lib/netns.sh (nsx, ns_listening, ...),
# and adds:
#
#   keep_or_help ARGS...          a lab test's arguments: --keep sets keep=1 (keep=0
#                                 otherwise), -h/--help prints usage and exits 0, anything
#                                 else dies
#   lab_down PREFIX               `LAB=PREFIX scripts/lab.sh down`, quietly: every process in
#                                 the lab's namespaces, then the namespaces
#   in_client CMD... / in_server CMD...
#                                 CMD in $CLIENT's / $SERVER's namespace
#   daemon_alive                  $DPID (the script's daemon) is set and running
#   ctl ARGS... / jctl ARGS...    $CTL (statewallctl) on the daemon's socket $SOCK; jctl --json
#   total KEY                     a field of `stats`' total (rx_packets, dropped.rule, ...), 0
#                                 when absent
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
# The helpers work under `set -euo pipefail`: only wait_for, ns_listening, daemon_alive,
# daemon_free and finish return a status other than 0, as said.

# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/lib/netns.sh
. "$(dirname "${BASH_SOURCE[0]}")/netns.sh"

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

lab_down() { LAB=$1 "$REPO/scripts/lab.sh" down >/dev/null 2>&1; }

in_client() { ip netns exec "$CLIENT" "$@"; }
in_server() { ip netns exec "$SERVER" "$@"; }

daemon_alive() { [[ -n ${DPID:-} ]] && kill -0 "$DPID" 2>/dev/null; }

ctl() { "$CTL" --socket "$SOCK" "$@"; }
jctl() { "$CTL" --socket "$SOCK" --json "$@"; }
total() { jctl stats | jq -r ".data.total.$1 // 0"; }

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
