#!/usr/bin/env bash
# Record a capture through the kernel reference gateway, and what the kernel decided.
#
#   scripts/capture-lab.sh [OUT_PREFIX]        (default: tests/data/http-gateway)
#
# Builds three network namespaces: swcap-client (10.10.0.2) — veth — swcap-gw, a Linux bridge
# br0 with ports `lan` and `wan`, br_netfilter and the seed ruleset of
# examples/seed-gateway.yaml in iptables-legacy — veth — swcap-server (10.10.0.3, python
# http.server on port 80, nothing on 8080). The client fetches http://10.10.0.3/, tries
# http://10.10.0.3:8080/ (the firewall answers with a TCP reset) and pings once.
#
# Writes:
#   OUT_PREFIX.pcapng        every frame that arrived on the gateway's ports, in time order,
#                            interfaces named lan and wan (statewall replay's input)
#   OUT_PREFIX.kernel.jsonl  per packet of that capture: the kernel's ctstate (from NFLOG rules
#                            that log each packet's state before the ruleset) and verdict
#                            (accept when the packet left on the other port)
#   OUT_PREFIX.iptables      the gateway's iptables-save/ip6tables-save, for reference
#
# IPv6 is disabled on the lab's interfaces so that no router solicitation, DAD or MLD noise
# lands in the capture at random times: this capture is about IPv4.
# Needs root. Namespaces are torn down on exit, including Ctrl-C and errors.
set -euo pipefail

cd "$(dirname "$0")/.."
PREFIX=${1:-tests/data/http-gateway}
PROG=capture-lab
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
# shellcheck source=scripts/lib/netns.sh
. scripts/lib/netns.sh

C=swcap-client
G=swcap-gw
S=swcap-server

case $PREFIX in -h | --help)
	usage
	exit 0
	;;
esac
need_root "network namespaces, iptables, tcpdump"
need_cmds ip iptables-legacy ip6tables-legacy tcpdump curl ping ethtool ss "$PY"

# One run at a time: the namespace names are fixed, so a second run would tear down the first.
mkdir -p /run/lock
exec 9>/run/lock/statewall-capture-lab.lock
flock -n 9 || die "another capture-lab run is in progress"

WORK=$(mktemp -d /tmp/swcap.XXXXXX)
PIDS=()

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		stop_pid "$pid" 1
	done
	ns_down "$C" "$G" "$S"
	if ((rc == 130 || rc == 143)); then
		echo "capture-lab: interrupted; nothing written" >&2
	elif ((rc != 0)); then
		echo "capture-lab: failed (exit $rc); nothing written; logs:" >&2
		tail -n 5 "$WORK"/*.log >&2 2>/dev/null || true
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Leftovers of a run that was killed with SIGKILL (we hold the lock, so nobody else owns them).
ns_down "$C" "$G" "$S"

echo "capture-lab: building namespaces"
for ns in "$C" "$G" "$S"; do
	ip netns add "$ns"
	nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n "$ns" link set lo up
done

# veth pairs are created inside the gateway namespace, their peers moved straight to the hosts.
ip -n "$G" link add lan address 02:00:00:00:01:01 type veth \
	peer name eth0 address 02:00:00:00:00:02 netns "$C"
ip -n "$G" link add wan address 02:00:00:00:01:02 type veth \
	peer name eth0 address 02:00:00:00:00:03 netns "$S"

# No offloads: checksums are computed in software, so every captured frame carries a correct
# checksum (conntrack and statewall both verify them), and no TSO/GRO super-frames appear.
offloads_off "$C" eth0
offloads_off "$S" eth0
offloads_off "$G" lan
offloads_off "$G" wan

ip -n "$G" link add br0 address 02:00:00:00:01:00 type bridge \
	stp_state 0 forward_delay 0 mcast_snooping 0
ip -n "$G" link set lan master br0
ip -n "$G" link set wan master br0
for dev in lan wan br0; do
	ip -n "$G" link set "$dev" up
done
# REJECT --reject-with tcp-reset routes its reset before sending it out of the ingress bridge
# port; without a route to the client the reset is silently not sent. A route, no address:
# the gateway stays invisible on the wire.
ip -n "$G" route add 10.10.0.0/24 dev br0

ip -n "$C" addr add 10.10.0.2/24 dev eth0
ip -n "$S" addr add 10.10.0.3/24 dev eth0
ip -n "$C" link set eth0 up
ip -n "$S" link set eth0 up

# br_netfilter: bridged IPv4/IPv6 traverse iptables (per-namespace sysctls; built into the
# lab kernels, a module elsewhere); ARP does not go through arptables.
bridge_netfilter "$G"
nsx "$G" sysctl -qw net.bridge.bridge-nf-call-arptables=0

echo "capture-lab: loading the seed ruleset (iptables-legacy)"
# The seed ruleset, rule for rule as examples/seed-gateway.yaml. In front of it, the oracle's
# NFLOG rules: every packet that reaches FORWARD is logged once, prefixed with its state.
load_rules() {
	local ipt=$1 family=$2
	nsx "$G" "$ipt" -w -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp
	nsx "$G" "$ipt" -w -P FORWARD DROP
	local st
	for st in NEW ESTABLISHED RELATED INVALID UNTRACKED; do
		nsx "$G" "$ipt" -w -A FORWARD -m conntrack --ctstate "$st" \
			-j NFLOG --nflog-group 1 --nflog-prefix "${st,,}"
	done
	nsx "$G" "$ipt" -w -A FORWARD -m conntrack --ctstate INVALID -j DROP
	nsx "$G" "$ipt" -w -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
	nsx "$G" "$ipt" -w -A FORWARD -m physdev --physdev-in lan -p tcp --dport 80 \
		-m conntrack --ctstate NEW -j ACCEPT
	nsx "$G" "$ipt" -w -A FORWARD -m physdev --physdev-in lan -p tcp --dport 8080 \
		-j REJECT --reject-with tcp-reset
	if [[ $family == 4 ]]; then
		nsx "$G" "$ipt" -w -A FORWARD -m physdev --physdev-in lan -p icmp \
			--icmp-type echo-request -m conntrack --ctstate NEW -j ACCEPT
	fi
	nsx "$G" "$ipt" -w -A FORWARD -m physdev --physdev-in lan -p tcp --dport 21 \
		-m conntrack --ctstate NEW -j ACCEPT
}
load_rules iptables-legacy 4
load_rules ip6tables-legacy 6

mkdir -p "$WORK/www"
printf '<html><body>statewall capture lab</body></html>\n' >"$WORK/www/index.html"
ip netns exec "$S" "$PY" -m http.server 80 --protocol HTTP/1.1 --bind 10.10.0.3 --directory "$WORK/www" \
	>"$WORK/http.log" 2>&1 &
PIDS+=($!)

wait_for 10 ns_listening "$S" tcp 80 || die "timed out waiting for http.server"

# Captures, all in the gateway: what arrives on each port, what leaves it, and the log.
start_capture() { # NAME TCPDUMP-ARGS...
	local name=$1
	shift
	# Not through nsx: $! must be tcpdump itself (ip netns exec execs it), not a subshell.
	ip netns exec "$G" tcpdump -n -U -s 0 -Z root \
		-w "$WORK/$name.pcap" "$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	CAPTURES+=("$!:$name")
}
CAPTURES=()
# Nanosecond stamps keep the merge of lan and wan in true order (nflog cannot give them).
start_capture lan-in -i lan -Q in --time-stamp-precision=nano
start_capture wan-in -i wan -Q in --time-stamp-precision=nano
start_capture lan-out -i lan -Q out --time-stamp-precision=nano
start_capture wan-out -i wan -Q out --time-stamp-precision=nano
start_capture nflog -i nflog:1
for c in "${CAPTURES[@]}"; do
	wait_for 10 grep -q "listening on" "$WORK/${c#*:}.log" || die "timed out waiting for tcpdump ${c#*:}"
done
sleep 0.5

echo "capture-lab: traffic"
nsx "$C" curl -sS -o /dev/null --max-time 5 http://10.10.0.3/ ||
	die "curl http://10.10.0.3/ failed through the kernel gateway"
sleep 0.3
rc=0
nsx "$C" curl -sS -o /dev/null --max-time 5 http://10.10.0.3:8080/ 2>/dev/null || rc=$?
# curl exit 7: connection refused, i.e. the gateway's reset arrived (28 would be a timeout).
((rc == 7)) || die "curl to port 8080 exited $rc, expected 7 (refused by the gateway's reset)"
sleep 0.3
nsx "$C" ping -c 1 -W 2 10.10.0.3 >/dev/null || die "ping through the kernel gateway failed"
# Let the last replies and the TCP teardown pass before stopping the captures.
sleep 1

for c in "${CAPTURES[@]}"; do
	kill -INT "${c%%:*}"
done
for c in "${CAPTURES[@]}"; do
	wait "${c%%:*}" || true
done

# Results are assembled in $WORK and moved into place together at the end, so a failed run
# never leaves a capture beside answers that belong to another.
{
	echo "# iptables-legacy-save of the capture lab's gateway (scripts/capture-lab.sh)"
	nsx "$G" iptables-legacy-save | grep -v '^#'
	echo "# ip6tables-legacy-save"
	nsx "$G" ip6tables-legacy-save | grep -v '^#'
} | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/' >"$WORK/out.iptables"

"$PY" "$SWLAB" pcapng merge "$WORK/out.pcapng" \
	lan="$WORK/lan-in.pcap" wan="$WORK/wan-in.pcap"
"$PY" "$SWLAB" kernel-oracle --capture "$WORK/out.pcapng" --nflog "$WORK/nflog.pcap" \
	--egress lan="$WORK/lan-out.pcap" --egress wan="$WORK/wan-out.pcap" \
	>"$WORK/out.kernel.jsonl"

mkdir -p "$(dirname "$PREFIX")"
for ext in pcapng kernel.jsonl iptables; do
	mv -f "$WORK/out.$ext" "$PREFIX.$ext"
done
echo "capture-lab: wrote $PREFIX.pcapng, $PREFIX.kernel.jsonl, $PREFIX.iptables"
