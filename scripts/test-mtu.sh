#!/usr/bin/env bash
# Lab test of the MTU check at start: statewall receives each frame into one AF_XDP frame
# (4096 bytes less 256 of XDP headroom: 3840), so a port whose MTU is over 3822 (3840 less the
# Ethernet header and one VLAN tag) is refused before anything is opened, with a message that
# names the port, the numbers and the fix, and exit status 1. Jumbo frames are not supported
# (docs/deploy.md, MTU).
#
#   refuse-9000      wan at MTU 9000: exit 1, the exact message, no XDP program left, no socket
#   refuse-3823      lan at 3823, one over the limit: exit 1, the message names lan and 3822
#   start-3822       lan at 3822, the limit: the daemon starts; SIGTERM stops it with status 0
#   start-1500       both ports at 1500: the daemon starts (its "running" line); SIGTERM
#                    stops it with status 0 and detaches XDP
#
# One network namespace of its own (swmtu<pid>) with two veth pairs, gateway ports
# mtu-lan/mtu-wan; no hosts, no traffic: the check is about starting.
#
#   scripts/test-mtu.sh [--keep]
#
# Needs root. Uses ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall}; --keep leaves
# the work directory (daemon logs, ruleset) in /tmp. The last line is "N passed, N failed"
# (exit 1 on a failure).
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-mtu
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
[[ $BIN == /* ]] || BIN=$REPO/$BIN
START=$SECONDS
NS=swmtu$$

keep_or_help "$@"
need_root "network namespaces, XDP"
need_cmds ip timeout
need_bins "$BIN"

TMP=$(mktemp -d /tmp/sw-mtu.XXXXXX)
LOG=$TMP/statewall.log
DPID=''

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	trap - EXIT INT TERM
	stop_pid "$DPID" 5
	ns_down "$NS"
	if ((keep)); then
		echo "$PROG: kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
lab_traps

ip netns add "$NS"
for p in lan wan; do
	ip -n "$NS" link add "mtu-$p" type veth peer name "mtu-$p-p"
	ip -n "$NS" link set "mtu-$p" up
	ip -n "$NS" link set "mtu-$p-p" up
done
ip -n "$NS" link set lo up
cat >"$TMP/gw.yaml" <<'EOF'
ports: {lan: mtu-lan, wan: mtu-wan}
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, proto: tcp, dport: 80, ctstate: new, action: accept}
EOF

mtus() {
	ip -n "$NS" link set mtu-lan mtu "$1"
	ip -n "$NS" link set mtu-wan mtu "$2"
}

# The daemon in the foreground, under a time limit: its status in RC, stderr in $LOG.
run_refused() {
	RC=0
	timeout 20 ip netns exec "$NS" "$BIN" run --config "$TMP/gw.yaml" --state none --workers 1 \
		--control-socket "$TMP/sock" --no-pin >"$LOG" 2>&1 || RC=$?
}

xdp_attached() { ip -n "$NS" -d link show | grep -c 'prog/xdp' || true; }

# The daemon in the background: started when its control socket appears.
run_started() {
	ip netns exec "$NS" "$BIN" run --config "$TMP/gw.yaml" --state none --workers 1 \
		--control-socket "$TMP/sock" --no-pin >"$LOG" 2>&1 &
	DPID=$!
	wait_for 15 test -S "$TMP/sock"
}

# SIGTERM to the daemon; its exit status in RC.
stop_daemon() {
	RC=0
	kill -TERM "$DPID" 2>/dev/null
	wait "$DPID" || RC=$?
	DPID=''
}

daemon_free() { true; }

case_refuse_9000() {
	mtus 1500 9000
	run_refused
	local want
	want="statewall: port wan (mtu-wan): MTU 9000 is larger than the 3822 bytes of IP packet an"
	want+=" AF_XDP frame holds here (a 4096-byte frame less 256 of XDP headroom, 14 of Ethernet"
	want+=" header and 4 of VLAN tag); set it to 1500 with \`ip link set dev mtu-wan mtu 1500\`"
	want+=" (jumbo frames are not supported yet)"
	((RC == 1)) || fail "exit status $RC, not 1"
	grep -qxF -- "$want" "$LOG" || fail "the message is not there: $(tail -n 2 "$LOG")"
	(($(xdp_attached) == 0)) || fail "an XDP program is attached"
	[[ ! -e $TMP/sock ]] || fail "a control socket was made"
	DET="exit $RC"
}

case_refuse_3823() {
	mtus 3823 1500
	run_refused
	((RC == 1)) || fail "exit status $RC, not 1"
	grep -qF "statewall: port lan (mtu-lan): MTU 3823 is larger than the 3822 bytes" "$LOG" ||
		fail "the message is not there: $(tail -n 2 "$LOG")"
	DET="exit $RC"
}

case_start_3822() {
	mtus 3822 1500
	run_started || fail "no control socket within 15 s: $(tail -n 2 "$LOG")"
	kill -0 "$DPID" 2>/dev/null || fail "the daemon is not running"
	grep -q 'is larger than' "$LOG" && fail "refused after all: $(grep 'is larger' "$LOG")"
	stop_daemon
	((RC == 0)) || fail "SIGTERM: exit status $RC"
	DET="started; SIGTERM: exit $RC"
}

case_start_1500() {
	mtus 1500 1500
	run_started || fail "no control socket within 15 s: $(tail -n 2 "$LOG")"
	grep -q 'statewall: running' "$LOG" || fail "no 'running' line: $(tail -n 2 "$LOG")"
	stop_daemon
	((RC == 0)) || fail "SIGTERM: exit status $RC"
	(($(xdp_attached) == 0)) || fail "an XDP program is left attached"
	DET="started; SIGTERM: exit $RC"
}

for c in refuse-9000 refuse-3823 start-3822 start-1500; do
	check "$c"
done
finish 20
