#!/usr/bin/env bash
# Failover of a gateway pair (issue 14): client — two gateways — server, keepalived in both
# gateway namespaces deciding which one forwards, the connection table synced over
# conntrackd's protocol (FTFW) on a sync link. The keepalived configurations and notify
# scripts are examples/ha/'s, with this lab's paths and addresses. Each case:
#
#   100 TCP connections (`swlab netpeer tcp-many`: a line every 0.5 s each, echoed) and an
#   iperf3 stream run through the active gateway, under a ruleset that accepts NEW only on a
#   SYN (so a connection the new active box does not know is dropped, not picked up); then
#   the active one is killed (`kill -9`); the other takes over: 0 connections reset, all 100
#   still echoing, iperf3 finishing without error; the outage measured (the longest any line
#   waited for its echo, and the longest iperf3 went without data).
#
#   statewall-pair      Statewall primary, Statewall backup: kill -9 of the primary's daemon
#                       (keepalived's health check sees it and hands over)
#   linux-to-statewall  a Linux primary (bridge + iptables + conntrackd), a Statewall backup:
#                       kill -9 of the primary's conntrackd (its health check: the Linux box
#                       stops forwarding, as a dead box would)
#   statewall-to-linux  a Statewall primary, a Linux backup: kill -9 of the primary's daemon
#
#   client eth0 ── br0 (lan switch) ──┬── lan [gateway A] wan ──┬── br0 (wan switch) ── server eth0
#                                     └── lan [gateway B] wan ──┘
#                              A sync0 10.99.0.1 ◄─ sync, VRRP ─► B sync0 10.99.0.2
#
# The switches flood every frame (bridge ageing 0): both gateways see all traffic, and the
# one that is not primary drops it (Statewall: the standby ruleset, `raw: {policy: drop}`;
# Linux: the notify script's first FORWARD rule).
#
#   scripts/test-failover.sh [--keep] [--case NAME]
#
# Each case prints PASS or FAIL with the outage; the last line is "N passed, N failed" (exit
# 1 on a failure). Needs root, keepalived, conntrackd, iperf3, iptables. Uses
# ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall} and its statewallctl; --keep
# leaves the work directory. Its namespaces are sw-fo-PID-*.
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-failover
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
FLOWS=100
SECS=24
ONLY=''

args=()
while (($#)); do
	case $1 in
	--case) need "$@" && ONLY=$2 && shift ;;
	*) args+=("$1") ;;
	esac
	shift
done
keep_or_help "${args[@]}"
need_root "network namespaces, XDP, keepalived"
need_cmds ip keepalived conntrackd conntrack iptables iperf3 jq timeout "$PY"
need_bins "$BIN" "$CTL"
PRIMARY_BACKUP=/usr/share/doc/conntrackd/examples/sync/primary-backup.sh
[[ -r $PRIMARY_BACKUP ]] || die "no $PRIMARY_BACKUP (Debian's conntrackd package ships it)"

# keepalived refuses scripts under a directory others may write (its script security): the
# work directory is root's alone, and so are the copies of examples/ha's scripts in it.
TMP=$(mktemp -d /var/tmp/sw-failover.XXXXXX)
chmod 700 "$TMP"
LAB=sw-fo-$$
CLIENT=$LAB-client SERVER=$LAB-server SWL=$LAB-swl SWW=$LAB-sww
GWS=("$LAB-a" "$LAB-b")
ADDR=(10.99.0.1 10.99.0.2)
# The gateways' logs of the last case (finish shows them on a failure).
LOG=$TMP/last.log
BG=()
RESULT_WIDTH=19

cleanup() {
	local p
	trap - EXIT INT TERM
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
	ns_down "${GWS[@]}" "$CLIENT" "$SERVER" "$SWL" "$SWW"
	if ((keep)); then echo "$PROG: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

# ---------------------------------------------------------------- the lab

host() { # ns addr
	ip -n "$1" addr add "$2/24" dev eth0
	ip -n "$1" link set eth0 up
	ip -n "$1" link set lo up
	nsx "$1" ethtool -K eth0 tx off >/dev/null 2>&1 || true
}

switch() { # ns
	ip netns add "$1"
	ip -n "$1" link add br0 type bridge ageing_time 0 stp_state 0
	nsx "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	ip -n "$1" link set br0 up
}

# port SWITCH NAME NS DEV: a veth from the switch's bridge to DEV in NS.
port() {
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" master br0
	ip -n "$1" link set "$2" up
	nsx "$1" ethtool -K "$2" tx off gro off >/dev/null 2>&1 || true
}

lab_up() {
	local i g
	ip netns add "$CLIENT" && ip netns add "$SERVER" || die "cannot create namespaces"
	switch "$SWL"
	switch "$SWW"
	port "$SWL" c "$CLIENT" eth0
	port "$SWW" s "$SERVER" eth0
	host "$CLIENT" 10.10.0.2
	host "$SERVER" 10.10.0.3
	for i in 0 1; do
		g=${GWS[$i]}
		ip netns add "$g"
		ip -n "$g" link set lo up
		port "$SWL" "g$i" "$g" lan
		port "$SWW" "g$i" "$g" wan
		for p in lan wan; do
			nsx "$g" sysctl -qw "net.ipv6.conf.$p.disable_ipv6=1"
			ip -n "$g" link set "$p" up
		done
	done
	ip -n "${GWS[0]}" link add sync0 type veth peer name sync0 netns "${GWS[1]}"
	for i in 0 1; do
		ip -n "${GWS[$i]}" addr add "${ADDR[$i]}/24" dev sync0
		ip -n "${GWS[$i]}" link set sync0 up
	done
}

echo "$PROG: lab $LAB; $FLOWS connections and an iperf3 stream, kill -9 of the primary"
lab_up
in_server "$PY" "$SWLAB" netpeer serve-tcp 7001 >"$TMP/serve.log" 2>&1 &
BG+=($!)
in_server iperf3 -s -p 5201 >"$TMP/iperf3-s.log" 2>&1 &
BG+=($!)
for p in 7001 5201; do
	wait_for 10 ns_listening "$SERVER" tcp "$p" || die "nothing listens on the server's tcp $p"
done

# ---------------------------------------------------------------- a Statewall gateway

statewall_running() { [[ -S $1 ]] && "$CTL" --socket "$1" stats >/dev/null 2>&1 && ip -n "$2" link show lan | grep -q xdp; }

# statewall_up I: the daemon in gateway I (standby ruleset) and its keepalived.
statewall_up() {
	local i=$1 g=${GWS[$1]} d=$TMP/$1 peer=${ADDR[$((1 - $1))]}
	mkdir -p "$d"
	local sync="sync:
  mode: ftfw
  udp: {local: '${ADDR[$i]}:3780', peer: '$peer:3780'}"
	cat >"$d/statewall.yaml" <<EOF
$sync
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {in_port: lan, proto: tcp, dport: [7001, 5201], ctstate: new, syn: true, action: accept}
    - {proto: icmp, icmp_type: [echo-request, echo-reply], action: accept}
EOF
	{
		echo "raw:"
		echo "  policy: drop"
		cat "$d/statewall.yaml"
	} >"$d/standby.yaml"
	ip netns exec "$g" "$BIN" run --config "$d/standby.yaml" --state none \
		--control-socket "$d/control.sock" --workers 1 --no-pin >"$d/statewall.log" 2>&1 &
	echo $! >"$d/daemon.pid"
	BG+=($!)
	# Killed on purpose later: no job report.
	disown
	local sock=$d/control.sock
	wait_for 20 statewall_running "$sock" "$g" || return 1
	install -m 700 examples/ha/statewall-notify.sh "$d/notify.sh"
	local notify="/usr/bin/env STATEWALLCTL=$CTL STATEWALL_SOCKET=$sock STATEWALL_ACTIVE=$d/statewall.yaml STATEWALL_STANDBY=$d/standby.yaml $d/notify.sh"
	sed -e "s|/usr/bin/statewallctl --socket /run/statewall/control.sock|$CTL --socket $sock|" \
		-e "s|/etc/statewall/ha/statewall-notify.sh|$notify|" \
		-e "s|unicast_src_ip 10.99.0.1|unicast_src_ip ${ADDR[$i]}|" \
		-e "s|^        10.99.0.2$|        $peer|" \
		-e "s|priority 150|priority $((150 - 50 * i))|" \
		examples/ha/keepalived-statewall.conf >"$d/keepalived.conf"
	keepalived_up "$i"
}

# keepalived_up I: keepalived (VRRP only) in gateway I with $TMP/I/keepalived.conf.
keepalived_up() {
	local d=$TMP/$1
	ip netns exec "${GWS[$1]}" keepalived --vrrp --dont-fork --log-console --log-detail \
		-f "$d/keepalived.conf" -p "$d/keepalived.pid" -r "$d/vrrp.pid" -c "$d/checkers.pid" \
		>"$d/keepalived.log" 2>&1 &
	BG+=($!)
	disown
}

# ---------------------------------------------------------------- a Linux gateway

linux_up() {
	local i=$1 g=${GWS[$1]} d=$TMP/$1 peer=${ADDR[$((1 - $1))]}
	mkdir -p "$d"
	ip -n "$g" link add br0 type bridge ageing_time 0 stp_state 0
	ip -n "$g" link set lan master br0
	ip -n "$g" link set wan master br0
	nsx "$g" sysctl -qw net.ipv6.conf.br0.disable_ipv6=1
	ip -n "$g" link set br0 up
	bridge_netfilter "$g"
	# The same ruleset as the Statewall box's, and the standby rule of linux-notify.sh.
	ip netns exec "$g" sh -e -c '
iptables -P FORWARD DROP
iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A FORWARD -m physdev --physdev-in lan -p tcp -m multiport --dports 7001,5201 --syn -m conntrack --ctstate NEW -j ACCEPT
iptables -A FORWARD -p icmp --icmp-type echo-request -j ACCEPT
iptables -A FORWARD -p icmp --icmp-type echo-reply -j ACCEPT
iptables -I FORWARD 1 -m comment --comment ha-standby -j DROP
ip6tables -P FORWARD DROP
ip6tables -I FORWARD 1 -m comment --comment ha-standby -j DROP
' || return 1
	conntrackd_conf "$d/conntrackd.conf" ftfw udp "${ADDR[$i]}" "$peer"
	ip netns exec "$g" conntrackd -C "$d/conntrackd.conf" -d >/dev/null 2>&1 || return 1
	wait_for 10 test -S "$d/conntrackd.ctl" || return 1
	# conntrack-tools' primary-backup.sh with this lab's conntrackd configuration and lock.
	sed -e "s|^CONNTRACKD_CONFIG=.*|CONNTRACKD_CONFIG=$d/conntrackd.conf|" \
		-e "s|^CONNTRACKD_LOCK=.*|CONNTRACKD_LOCK=$d/conntrackd.lock|" \
		"$PRIMARY_BACKUP" >"$d/primary-backup.sh"
	chmod 700 "$d/primary-backup.sh"
	install -m 700 examples/ha/linux-notify.sh "$d/notify.sh"
	local notify="/usr/bin/env PRIMARY_BACKUP=$d/primary-backup.sh $d/notify.sh"
	sed -e "s|/usr/sbin/conntrackd -C /etc/conntrackd/conntrackd.conf -s|/usr/sbin/conntrackd -C $d/conntrackd.conf -s|" \
		-e "s|/etc/statewall/ha/linux-notify.sh|$notify|" \
		-e "s|unicast_src_ip 10.99.0.2|unicast_src_ip ${ADDR[$i]}|" \
		-e "s|^        10.99.0.1$|        $peer|" \
		-e "s|priority 100|priority $((150 - 50 * i))|" \
		examples/ha/keepalived-linux.conf >"$d/keepalived.conf"
	keepalived_up "$i"
}

# ---------------------------------------------------------------- the cases

pings() { in_client ping -c 1 -W 1 "$SRV4" >/dev/null 2>&1; }

# pair KIND_A KIND_B KILL: gateway A (primary) and B, each statewall or linux; KILL kills
# A's part that keepalived watches.
pair() {
	local a=$1 b=$2 i kinds=("$1" "$2")
	for i in 0 1; do
		case ${kinds[$i]} in
		statewall) statewall_up "$i" || { fail "Statewall did not come up in ${GWS[$i]}: $(tail -2 "$TMP/$i/statewall.log")"; return 1; } ;;
		linux) linux_up "$i" || { fail "the Linux gateway did not come up in ${GWS[$i]}"; return 1; } ;;
		esac
	done
	wait_for 20 pings || { fail "no ping through the primary: $(grep -h -i "state" "$TMP"/0/keepalived.log | tail -2)"; return 1; }
	grep -q "Entering MASTER STATE" "$TMP/0/keepalived.log" ||
		{ fail "gateway A is not the primary: $(grep -h "STATE" "$TMP"/*/keepalived.log | tail -2)"; return 1; }
	rm -f "$TMP/ready"
	in_client "$PY" "$SWLAB" netpeer tcp-many "$SRV4" 7001 20000 "$FLOWS" "$SECS" "$TMP/ready" \
		>"$TMP/many.json" 2>"$TMP/many.err" &
	local many=$!
	BG+=("$many")
	wait_for 60 test -e "$TMP/ready" || { fail "the connections did not open: $(tail -2 "$TMP/many.err")"; return 1; }
	in_client iperf3 -c "$SRV4" -p 5201 -t $((SECS - 6)) -i 0.2 --json >"$TMP/iperf3.json" 2>&1 &
	local iperf=$!
	BG+=("$iperf")
	sleep 4
	case $a in
	statewall) kill -9 "$(cat "$TMP/0/daemon.pid")" ;;
	linux) pkill_conntrackd 0 ;;
	esac
	date +%s.%N >"$TMP/killed"
	# Some seconds on, while the connections still run: B holds them (committed from its
	# external cache, then tracked).
	sleep 8
	local held
	case $b in
	statewall) held=$("$CTL" --socket "$TMP/1/control.sock" conntrack list -p tcp --dport 7001 --state ESTABLISHED 2>/dev/null | wc -l) ;;
	linux) held=$(ip netns exec "${GWS[1]}" conntrack -L -p tcp --dport 7001 --state ESTABLISHED 2>/dev/null | grep -c ASSURED) ;;
	esac
	((held >= FLOWS)) || fail "gateway B holds $held of the $FLOWS connections"
	wait "$iperf"
	wait "$many"
	grep -q "Entering MASTER STATE" "$TMP/1/keepalived.log" || fail "gateway B never became the primary"
	local opened resets stalled wait_ms gap
	read -r opened resets stalled wait_ms < <(jq -r '"\(.opened) \(.resets) \(.stalled) \(.max_wait_ms)"' "$TMP/many.json")
	((opened == FLOWS)) || fail "$opened of $FLOWS connections opened"
	((resets == 0)) || fail "$resets connections reset or closed"
	jq -e '.error' "$TMP/iperf3.json" >/dev/null 2>&1 && fail "iperf3: $(jq -r .error "$TMP/iperf3.json")"
	# The longest run of iperf3 intervals without a byte.
	gap=$(jq -r '[.intervals[].sum | {s: .seconds, b: .bytes}] | reduce .[] as $i ({run: 0, max: 0}; if $i.b == 0 then .run += $i.s | .max = ([.max, .run] | max) else .run = 0 end) | .max * 1000 | floor' "$TMP/iperf3.json" 2>/dev/null)
	DET="outage: lines waited up to ${wait_ms} ms, iperf3 ${gap:-?} ms without data; $resets resets, $stalled connections stalled 2 s or more"
	echo "${kinds[*]} ${wait_ms} ${gap:-?}" >>"$TMP/outages"
}

# Kill gateway I's conntrackd (found by its lock file's namespace: the only one there).
pkill_conntrackd() {
	local p
	for p in $(ns_pids "${GWS[$1]}"); do
		[[ $(cat "/proc/$p/comm" 2>/dev/null) == conntrackd ]] && kill -9 "$p"
	done
}

# Stop both gateways' processes and undo their bridges; the switches and hosts stay.
pair_down() {
	local i g p
	cat "$TMP"/[01]/*.log >"$LOG" 2>/dev/null
	for i in 0 1; do
		g=${GWS[$i]}
		for p in $(ns_pids "$g"); do kill -9 "$p" 2>/dev/null; done
		ip -n "$g" link del br0 2>/dev/null
		ip netns exec "$g" iptables -F 2>/dev/null
		ip netns exec "$g" iptables -P FORWARD ACCEPT 2>/dev/null
		ip netns exec "$g" ip6tables -F 2>/dev/null
		ip -n "$g" link set lan xdp off 2>/dev/null
		ip -n "$g" link set wan xdp off 2>/dev/null
		rm -rf "${TMP:?}/$i"
	done
	sleep 1
}

daemon_free() { true; }
case_statewall_pair() { pair statewall statewall; }
case_linux_to_statewall() { pair linux statewall; }
case_statewall_to_linux() { pair statewall linux; }

for c in statewall-pair linux-to-statewall statewall-to-linux; do
	[[ -z $ONLY || $ONLY == "$c" ]] || continue
	check "$c"
	((keep)) && cp -r "$TMP/0" "$TMP/$c-a" 2>/dev/null && cp -r "$TMP/1" "$TMP/$c-b" 2>/dev/null
	pair_down
done
finish 20
