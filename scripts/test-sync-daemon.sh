#!/usr/bin/env bash
# The daemon's sync (issue 14) against a real conntrackd 1.4.7, in a scripts/lab.sh lab: the
# real daemon (`statewall run`, AF_XDP, 2 workers) forwards between client and server, and
# its sync link (sync0, 10.99.0.1) reaches a Linux peer namespace (10.99.0.2) running
# conntrackd and the kernel's conntrack. NOTRACK and FTFW over UDP unicast, then FTFW over
# conntrackd's multicast group (225.0.0.50):
#
#   RUN-to-linux      TCP connections through Statewall (`swlab netpeer tcp-many`) appear in
#                     conntrackd's external cache (`conntrackd -e`) as ESTABLISHED and
#                     ASSURED; after `conntrackd -c` the peer kernel's `conntrack -L` has each
#                     with its tuple, state, status and a timeout near tcp_timeout_established;
#                     `conntrackd -s` counts no malformed message; `statewallctl sync status`
#                     and `stats` show the sync
#   RUN-from-linux    entries made in the peer's kernel (`conntrack -I`: TCP ESTABLISHED with
#                     a mark, UDP, ICMP echo) reach Statewall's external cache; after
#                     `statewallctl sync commit` `statewallctl conntrack list` has them; the
#                     daemon counts no malformed or unauthenticated datagram
#   ftfw-loss         (FTFW) 5% loss both ways on the sync link: 300 entries made in the
#                     peer's kernel all reach Statewall's cache, and 100 connections through
#                     Statewall all reach conntrackd's; NACKs and resends did it. The loss is
#                     iptables' `-m statistic --mode random --probability 0.05 -j DROP` on
#                     each side's sync datagrams (the lab kernels have no sch_netem for
#                     `tc netem`)
#   ftfw-restart      (FTFW) conntrackd restarted (its caches empty, a HELLO), then `conntrackd
#                     -n` (request resync): Statewall sends its table and conntrackd's cache
#                     has every connection again
#
#   scripts/test-sync-daemon.sh [--keep]
#
# Each case prints PASS or FAIL; the last line is "N passed, N failed" (exit 1 on a failure).
# Needs root, conntrackd and conntrack (conntrack-tools), iptables. Uses
# ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall} and its statewallctl; --keep
# leaves the work directory. Its lab is sw-sd-PID (plus the namespace sw-sd-PID-peer).
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-sync-daemon
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh
# shellcheck source=scripts/lib/conntrackd.sh
. scripts/lib/conntrackd.sh

BIN=${STATEWALL:-$RELEASE/statewall}
CTL=${STATEWALLCTL:-$(dirname "$BIN")/statewallctl}
[[ $BIN == /* ]] || BIN=$REPO/$BIN
[[ $CTL == /* ]] || CTL=$REPO/$CTL
START=$SECONDS
SRV4=10.10.0.3

keep_or_help "$@"
need_root "network namespaces, XDP, conntrackd"
need_cmds ip conntrack conntrackd iptables jq timeout "$PY"
need_bins "$BIN" "$CTL"

TMP=$(mktemp -d /tmp/sw-syncd.XXXXXX)
chmod 755 "$TMP"
SOCK=$TMP/run/control.sock
LOG=$TMP/statewall.log
LAB=sw-sd-$$
CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server PEER=$LAB-peer
DPID=''
MANY=''
RESULT_WIDTH=20

in_peer() { ip netns exec "$PEER" "$@"; }
cd_() { in_peer conntrackd -C "$TMP/peer.conf" "$@"; }

cleanup() {
	trap - EXIT INT TERM
	stop_pid "$MANY"
	stop_pid "$DPID"
	[[ -S $TMP/peer.ctl ]] && cd_ -k >/dev/null 2>&1
	ns_down "$PEER"
	lab_down "$LAB"
	if ((keep)); then echo "$PROG: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

echo "$PROG: lab $LAB, peer $PEER"
LAB=$LAB LAB_QUEUES=2 scripts/lab.sh up >"$TMP/lab.log" 2>&1 ||
	die "scripts/lab.sh up failed: $(tail -1 "$TMP/lab.log")"
ip netns add "$PEER" && ip -n "$PEER" link set lo up || die "cannot create $PEER"
ip -n "$GW" link add sync0 type veth peer name sync0 netns "$PEER" || die "cannot create sync0"
ip -n "$GW" addr add 10.99.0.1/24 dev sync0
ip -n "$PEER" addr add 10.99.0.2/24 dev sync0
ip -n "$GW" link set sync0 up
ip -n "$PEER" link set sync0 up
in_server "$PY" "$SWLAB" netpeer serve-tcp 7001 >"$TMP/serve.log" 2>&1 &
wait_for 10 ns_listening "$SERVER" tcp 7001 || die "nothing listens on the server's tcp 7001"

# ruleset MODE [multicast]: NEW only on a SYN from the lan, as a gateway pair runs it; the
# sync link unicast or (with multicast) conntrackd's default group.
ruleset() {
	local link="udp: {local: '10.99.0.1:3780', peer: '10.99.0.2:3780'}"
	[[ ${2:-} == multicast ]] && link="multicast: {group: 225.0.0.50, port: 3780, interface: 10.99.0.1}"
	cat >"$TMP/gw.yaml" <<EOF
sync:
  mode: $1
  $link
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {in_port: lan, proto: tcp, dport: 7001, ctstate: new, syn: true, action: accept}
    - {proto: [icmp, icmpv6], action: accept}
EOF
}

# peer_conf MODE [multicast]: conntrackd on the peer's end of the link.
peer_conf() { conntrackd_conf "$TMP/peer.conf" "$1" "${2:-udp}" 10.99.0.2 10.99.0.1; }

peer_up() { [[ -S $TMP/peer.ctl ]] && cd_ -s >/dev/null 2>&1; }
start_peer() {
	cd_ -d >/dev/null 2>&1 && wait_for 10 peer_up
}
# conntrackd daemonizes: stopped by its control socket, then waited for (the peer's
# namespace runs nothing else).
peer_gone() { [[ -z $(ns_pids "$PEER") ]]; }
stop_peer() {
	[[ -S $TMP/peer.ctl ]] && cd_ -k >/dev/null 2>&1
	wait_for 10 peer_gone && rm -f "$TMP/peer.lock" "$TMP/peer.ctl"
}

sw_up() { [[ -S $SOCK ]] && ctl stats >/dev/null 2>&1 && ip -n "$GW" link show lan | grep -q xdp; }
start_daemon() {
	ip netns exec "$GW" "$BIN" run --config "$TMP/gw.yaml" --state none --control-socket "$SOCK" \
		--workers 2 --no-pin >>"$LOG" 2>&1 &
	DPID=$!
	wait_for 20 sw_up
}
stop_daemon() {
	stop_pid "$DPID"
	DPID=''
}
sync_status() { jctl sync status | jq -r ".data.status.$1"; }

# many N FIRST SECS: N connections to the server's 7001 from ports FIRST.., held SECS.
many() {
	in_client "$PY" "$SWLAB" netpeer tcp-many "$SRV4" 7001 "$2" "$1" "$3" "$TMP/ready" \
		>"$TMP/many.json" 2>"$TMP/many.err" &
	MANY=$!
	wait_for 60 test -e "$TMP/ready"
}
# ext_count PATTERN: lines of conntrackd's external cache matching PATTERN.
ext_count() { cd_ -e 2>/dev/null | grep -c -- "$1"; }

# What the cases wait for.
five() { (($(ext_count "ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=${FIRST%?}[0-4] dport=7001 .*\[ASSURED\]") == 5)); }
three() { (($(sync_status external_cache) >= 3)); }
all300() { (($(sync_status external_cache) >= 300)); }
all100() { (($(ext_count "ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=21[0-9][0-9][0-9] dport=7001 .*\[ASSURED\]") >= 100)); }

# ---------------------------------------------------------------- cases

# to_linux FIRST: connections from source ports FIRST.. (each mode its own: the last mode's
# are in TIME_WAIT on the client).
to_linux() {
	rm -f "$TMP/ready"
	many 5 "$1" 30 || { fail "the 5 connections did not open: $(tail -2 "$TMP/many.err")"; return; }
	wait_for 10 five || fail "conntrackd's external cache: $(cd_ -e 2>&1 | grep -c 7001) of 5 ESTABLISHED"
	cd_ -c >/dev/null 2>&1 || fail "conntrackd -c failed"
	in_peer conntrack -L -p tcp --dport 7001 >"$TMP/peer.kernel" 2>/dev/null
	local ok
	ok=$(awk -v p="${FIRST%?}" '$4 == "ESTABLISHED" && $3 > 400000 && $0 ~ "src=10.10.0.2 dst=10.10.0.3 sport=" p "[0-4] dport=7001 src=10.10.0.3 dst=10.10.0.2 sport=7001 dport=" p "[0-4] \\[ASSURED\\]"' "$TMP/peer.kernel" | wc -l)
	((ok == 5)) || fail "the peer kernel's table after the commit: $ok of 5 right: $(tr '\n' '|' <"$TMP/peer.kernel")"
	cd_ -s >"$TMP/peer.stats" 2>&1
	grep -q "0 Malformed msgs" "$TMP/peer.stats" || fail "conntrackd counted malformed messages"
	ctl sync status >"$TMP/status.txt" 2>&1 && ctl stats >>"$TMP/status.txt" 2>&1
	(($(grep -c "^sync: ftfw over\|^sync: notrack over" "$TMP/status.txt") == 2)) &&
		grep -q "malformed 0, unauthenticated 0" "$TMP/status.txt" ||
		fail "statewallctl sync status / stats: $(head -3 "$TMP/status.txt" | tr '\n' '|')"
	stop_pid "$MANY"
	MANY=''
	DET="5 connections: external cache, then the peer kernel (ESTABLISHED, ASSURED, timeout > 400000)"
}

from_linux() {
	in_peer sh -c '
conntrack -I -p tcp -s 10.10.0.2 -d 10.10.0.3 --sport 30000 --dport 7001 --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 432000 -m 7
conntrack -I -p udp -s 10.10.0.2 -d 10.10.0.3 --sport 5353 --dport 53 -t 30
conntrack -I -p icmp -s 10.10.0.2 -d 10.10.0.3 --icmp-type 8 --icmp-code 0 --icmp-id 4660 -t 30
' >/dev/null 2>&1 || { fail "conntrack -I failed"; return; }
	wait_for 10 three || fail "Statewall's external cache has $(sync_status external_cache) entries, not 3"
	jctl sync commit >"$TMP/commit.json" || fail "sync commit failed: $(cat "$TMP/commit.json")"
	ctl conntrack list >"$TMP/list" 2>&1
	grep -q "tcp .*ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=30000 dport=7001 .*\[ASSURED\] mark=7" "$TMP/list" &&
		grep -q "udp .*src=10.10.0.2 dst=10.10.0.3 sport=5353 dport=53 .*\[UNREPLIED\]" "$TMP/list" &&
		grep -q "icmp .*src=10.10.0.2 dst=10.10.0.3 type=8 code=0 id=4660" "$TMP/list" ||
		fail "statewallctl conntrack list after the commit: $(tr '\n' '|' <"$TMP/list")"
	local m u
	m=$(sync_status malformed) u=$(sync_status unauthenticated)
	((m == 0 && u == 0)) || fail "$m malformed, $u unauthenticated"
	in_peer conntrack -D -p udp --dport 53 >/dev/null 2>&1
	DET="TCP (mark 7), UDP, ICMP: external cache, committed, listed; 0 malformed"
}

case_notrack_to_linux() { FIRST=20000 to_linux 20000; }
case_notrack_from_linux() { from_linux; }
case_ftfw_to_linux() { FIRST=20010 to_linux 20010; }
case_ftfw_from_linux() { from_linux; }
case_multicast_to_linux() { FIRST=20020 to_linux 20020; }
case_multicast_from_linux() { from_linux; }

case_ftfw_loss() {
	local i n
	jctl sync flush >/dev/null
	cd_ -f >/dev/null 2>&1
	for n in "$GW" "$PEER"; do
		ip netns exec "$n" iptables -A OUTPUT -o sync0 -p udp --dport 3780 \
			-m statistic --mode random --probability 0.05 -j DROP ||
			{ fail "iptables failed in $n"; return; }
	done
	# Both ways at once: 100 connections through Statewall (held through ftfw-restart),
	# 300 entries made in the peer's kernel.
	rm -f "$TMP/ready"
	many 100 21000 120 || { fail "the 100 connections did not open: $(tail -2 "$TMP/many.err")"; return; }
	for ((i = 0; i < 300; i++)); do
		echo "conntrack -I -p udp -s 10.10.0.2 -d 10.10.0.3 --sport $((31000 + i)) --dport 9999 -t 600"
	done | in_peer sh >/dev/null 2>&1 || { fail "conntrack -I failed"; return; }
	wait_for 40 all100 || fail "conntrackd's external cache: $(ext_count "dport=7001 .*ASSURED") of 100"
	wait_for 40 all300 || fail "Statewall's external cache: $(sync_status external_cache) of 300"
	[[ -z $WHY ]] || {
		cd_ -e >"$TMP/loss.external" 2>&1
		jctl sync status >"$TMP/loss.status" 2>&1
	}
	local nacks resent dropped=0 d
	nacks=$(sync_status nacks_sent) resent=$(sync_status resent)
	((nacks > 0 && resent > 0)) || fail "$nacks NACKs sent, $resent messages resent under 5% loss"
	for n in "$GW" "$PEER"; do
		d=$(ip netns exec "$n" iptables -L OUTPUT -v -x -n | awk '/statistic/ {print $1}')
		dropped=$((dropped + ${d:-0}))
		ip netns exec "$n" iptables -F OUTPUT
	done
	((dropped > 0)) || fail "the loss dropped nothing"
	DET="100 one way, 300 the other, $dropped datagrams lost; Statewall sent $nacks NACKs, resent $resent"
}

case_ftfw_restart() {
	stop_peer || { fail "conntrackd did not stop"; return; }
	start_peer || { fail "conntrackd did not start again"; return; }
	(($(ext_count "dport=7001") == 0)) || fail "the restarted conntrackd's cache is not empty"
	cd_ -n >/dev/null 2>&1 || fail "conntrackd -n failed"
	wait_for 20 all100 || fail "after the resync conntrackd's cache has $(ext_count "dport=7001") entries, not the 100 connections"
	(($(sync_status resyncs_recv) >= 1)) || fail "Statewall saw no RESYNC"
	stop_pid "$MANY"
	MANY=''
	DET="HELLO, RESYNC: the 100 connections back in conntrackd's cache"
}

for run in notrack ftfw multicast; do
	# multicast: FTFW over conntrackd's multicast group.
	mode=$run link=udp
	[[ $run == multicast ]] && mode=ftfw link=multicast
	ruleset "$mode" "$link"
	peer_conf "$mode" "$link"
	start_peer || die "conntrackd did not start in $PEER: $(tail -3 "$TMP/peer.log")"
	start_daemon || {
		tail -5 "$LOG" >&2
		die "statewall run did not come up"
	}
	check "$run-to-linux"
	check "$run-from-linux"
	if [[ $run == ftfw ]]; then
		check ftfw-loss
		check ftfw-restart
	fi
	stop_daemon
	stop_peer || die "conntrackd did not stop"
	in_peer conntrack -F >/dev/null 2>&1
done
finish 20
