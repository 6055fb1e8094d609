# shellcheck shell=bash
# Network-namespace helpers for the labs (scripts/lab.sh, scripts/capture-lab.sh). Sourced,
# never run, after scripts/lib/common.sh:
#
#   # shellcheck source=scripts/lib/netns.sh
#   . scripts/lib/netns.sh
#
#   nsx NS CMD...                 CMD in network namespace NS (in the background, use
#                                 `ip netns exec NS CMD &` instead: then $! is CMD's own pid)
#   ns_pids NS...                 the processes in those namespaces, one a line
#   ns_down NS...                 stop every process in those namespaces (TERM, up to 1 s,
#                                 then KILL), then delete the namespaces; those that do not
#                                 exist are skipped
#   ns_listening NS tcp|udp PORT  something in NS listens on PORT
#   offloads_off NS DEV           DEV computes checksums in software and makes no TSO/GSO/GRO
#                                 super-frames (every frame on the wire is whole and correct)
#   bridge_netfilter NS           bridged IPv4/IPv6 in NS traverse iptables/ip6tables
#                                 (br_netfilter, loaded when it is a module)

nsx() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

ns_pids() {
	local ns
	for ns in "$@"; do
		if [[ -e /run/netns/$ns ]]; then ip netns pids "$ns" 2>/dev/null || true; fi
	done
}

ns_down() {
	local ns tries=10
	local -a pids
	mapfile -t pids < <(ns_pids "$@")
	if ((${#pids[@]} > 0)); then
		kill -TERM "${pids[@]}" 2>/dev/null || true
		while ((tries-- > 0)) && [[ -n $(ns_pids "$@") ]]; do sleep 0.1; done
		mapfile -t pids < <(ns_pids "$@")
		((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
	fi
	for ns in "$@"; do
		if [[ -e /run/netns/$ns ]]; then ip netns delete "$ns"; fi
	done
}

ns_listening() {
	local flag=-Hltn
	[[ $2 == udp ]] && flag=-Hlun
	ip netns exec "$1" ss "$flag" "sport = :$3" | grep -q .
}

offloads_off() {
	ip netns exec "$1" ethtool -K "$2" tx off rx off >/dev/null
	ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
}

bridge_netfilter() {
	if [[ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
		modprobe br_netfilter 2>/dev/null || true
	fi
	ip netns exec "$1" sysctl -qw net.bridge.bridge-nf-call-iptables=1 \
		net.bridge.bridge-nf-call-ip6tables=1
}
