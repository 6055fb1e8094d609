#!/usr/bin/env bash
# The built-in lab (DESIGN.md §7): a gateway between two hosts, on one machine.
#
#   scripts/lab.sh up [--kernel|--direct]   build it
#   scripts/lab.sh down            remove it (also what `up` does first): every process still
#                                  in its namespaces is stopped (TERM, up to 1 s, then KILL),
#                                  then the namespaces are deleted
#   scripts/lab.sh status          show the namespaces and addresses
#
#   netns ${LAB}-client  eth0 10.10.0.2/24 fd00:10::2/64 ── veth ── lan ┐
#                                                                       ├ netns ${LAB}-gw
#   netns ${LAB}-server  eth0 10.10.0.3/24 fd00:10::3/64 ── veth ── wan ┘
#
# LAB defaults to `sw` (namespaces sw-client, sw-gw, sw-server); tests set their own prefix so
# they never touch another lab. The gateway's ports are named `lan` and `wan`, so a ruleset
# without a `ports:` key binds them as they are; statewall runs in the gateway namespace:
# `ip netns exec sw-gw statewall run --config FILE`.
#
# --kernel makes the gateway the kernel oracle instead: a Linux bridge br0 over lan and wan
# with br_netfilter (bridge-nf-call-iptables/ip6tables = 1), so iptables' FORWARD chain in
# sw-gw filters the bridged traffic (match ports with `-m physdev --physdev-in lan`).
#
# --direct joins the two hosts with one veth pair and no gateway at all: the baseline that
# scripts/bench-e2e.sh subtracts to get what a gateway costs.
set -euo pipefail

PROG=lab.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
# shellcheck source=scripts/lib/netns.sh
. "$(dirname "$0")/lib/netns.sh"

LAB=${LAB:-sw}
# Queues per veth (LAB_QUEUES=2 lets `statewall run --workers 2` give each worker a queue).
QUEUES=${LAB_QUEUES:-1}
CLIENT=$LAB-client
GW=$LAB-gw
SERVER=$LAB-server
# Fixed MACs keep captures and neighbour tables reproducible.
CLIENT_MAC=02:5e:00:00:00:02
SERVER_MAC=02:5e:00:00:00:03

# Whatever still runs in the lab (a daemon, servers, a test's leftovers) goes first: TERM, a
# short wait for it to exit, then KILL; then the namespaces.
down() { ns_down "$CLIENT" "$GW" "$SERVER"; }

host() { # ns mac v4 v6
	local ns=$1 mac=$2 v4=$3 v6=$4
	ip -n "$ns" link set eth0 address "$mac"
	ip -n "$ns" addr add "$v4/24" dev eth0
	ip -n "$ns" addr add "$v6/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
	# veth leaves TCP/UDP checksums to "offload"; frames that cross AF_XDP (copy mode) would
	# then carry unfinished checksums, so the hosts compute them in software.
	nsx "$ns" ethtool -K eth0 tx off >/dev/null 2>&1 || true
}

up() {
	local kernel=0 direct=0
	for a in "$@"; do
		case $a in
		--kernel) kernel=1 ;;
		--direct) direct=1 ;;
		*) die "unknown option $a (try: up [--kernel|--direct])" ;;
		esac
	done
	down
	if ((direct)); then
		ip netns add "$CLIENT"
		ip netns add "$SERVER"
		local qd="numtxqueues $QUEUES numrxqueues $QUEUES"
		# shellcheck disable=SC2086 # $qd is two option pairs
		ip link add eth0 netns "$CLIENT" $qd type veth peer name eth0 netns "$SERVER" $qd
		host "$CLIENT" "$CLIENT_MAC" 10.10.0.2 fd00:10::2
		host "$SERVER" "$SERVER_MAC" 10.10.0.3 fd00:10::3
		echo "lab.sh: up (no gateway: $CLIENT and $SERVER joined directly)"
		return
	fi
	ip netns add "$CLIENT"
	ip netns add "$GW"
	ip netns add "$SERVER"
	local q="numtxqueues $QUEUES numrxqueues $QUEUES"
	# shellcheck disable=SC2086 # $q is two option pairs
	ip link add eth0 netns "$CLIENT" $q type veth peer name lan netns "$GW" $q
	# shellcheck disable=SC2086
	ip link add eth0 netns "$SERVER" $q type veth peer name wan netns "$GW" $q
	host "$CLIENT" "$CLIENT_MAC" 10.10.0.2 fd00:10::2
	host "$SERVER" "$SERVER_MAC" 10.10.0.3 fd00:10::3
	ip -n "$GW" link set lo up
	for p in lan wan; do
		# The gateway ports carry no addresses of their own: statewall (or the bridge) forwards
		# between them, bump-in-the-wire.
		nsx "$GW" sysctl -qw "net.ipv6.conf.$p.disable_ipv6=1"
		ip -n "$GW" link set "$p" up
	done
	if ((kernel)); then
		ip -n "$GW" link add br0 type bridge
		ip -n "$GW" link set lan master br0
		ip -n "$GW" link set wan master br0
		nsx "$GW" sysctl -qw net.ipv6.conf.br0.disable_ipv6=1
		ip -n "$GW" link set br0 up
		bridge_netfilter "$GW"
	fi
	echo "lab.sh: up ($([[ $kernel == 1 ]] && echo kernel bridge || echo "ports lan/wan for statewall") in $GW; hosts $CLIENT, $SERVER)"
}

status() {
	for ns in "$CLIENT" "$GW" "$SERVER"; do
		if [[ -e /run/netns/$ns ]]; then
			echo "== $ns"
			ip -n "$ns" -brief addr
		else
			echo "== $ns: absent"
		fi
	done
}

cmd=${1:-}
shift || true
case $cmd in
up | down)
	need_root "network namespaces and veth"
	need_cmds ip
	;;
esac
case $cmd in
up) up "$@" ;;
down)
	down
	echo "lab.sh: down"
	;;
status) status ;;
-h | --help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
