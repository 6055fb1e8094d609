#!/usr/bin/env bash
# Common load cases for statewall-pktgen against the lab (scripts/lab.sh), in the manner of
# the kernel's samples/pktgen/pktgen_sample0*.sh: the generator sends on ${LAB}-client's eth0
# and receives on ${LAB}-server's, through the gateway running in ${LAB}-gw, and reports
# sent, received, lost, reordered and latency.
#
#   scripts/pktgen.sh [OPTIONS] CASE [-- PKTGEN-ARGS...]
#
# Cases (10.10.0.2 -> 10.10.0.3, or fd00:10::2 -> fd00:10::3 with -6):
#   single-flow  one UDP flow to port 9, 64-byte frames (pkt-size 60)
#   many-flows   UDP to port 9 over --flows flows (default 10000), source ports 1024-65535
#   imix         UDP to port 9 over --flows flows (default 1000), IMIX sizes: 7:4:1 of
#                64, 594 and 1518-byte frames
#   stateful     real TCP connections to port 80 (--flows, default 100): each handshaken
#                through the gateway, then data both ways within the windows, reset at the end
#   conn-rate    stateful TCP opened at --conn-rate (default 1k/s), each connection carrying
#                --flowlen data segments (default 10) and then closed with FINs
#   syn-flood    TCP SYNs to port 80, each from a fresh tuple (source ports 1024-65535 over
#                10.10.0.2-254 or fd00:10::2-ffff): one NEW conntrack entry per SYN
#
# Options:
#   -r, --rate R        packets/s (100k, 1M) or bits/s (1Gbit); 0: as fast as it goes
#                       (default 100k)
#   -d, --duration S    seconds to send (default 5)
#   -c, --count N       packets to send (data segments for stateful cases); may end it first
#   -f, --flows N       flows, or connections for stateful cases
#   -s, --pkt-size S    frame size without FCS: 60, a range 60-1514, or imix
#                       (stateful default: the smallest with the generator's stamp, 70 or 90)
#   -6                  IPv6
#   --vlan ID           one 802.1Q tag on every frame
#   --src, --dst, --sport, --dport RANGE   replace the case's addresses or ports
#   --conn-rate R, --flowlen N             conn-rate's connection rate and length
#   -q, --quiet         no progress line each second
#   --json              the report as JSON on stdout (progress stays on stderr)
#   --lab               a lab of its own: build it (LAB, default swpg<pid>; one that exists
#                       already is refused), start `statewall run` in its gateway with
#                       bench/lab/gateway.rules translated by `statewall import-iptables`, run
#                       the case, print the gateway's stats, tear it all down (also on Ctrl-C)
#   -n, --dry-run       print the statewall-pktgen command instead of running it
# Anything after `--` goes to statewall-pktgen as it is (statewall-pktgen --help).
#
# Without --lab, LAB (default sw) must be up with a gateway running, e.g.
#   scripts/lab.sh up
#   statewall import-iptables bench/lab/gateway.rules >gw.yaml
#   ip netns exec sw-gw statewall run --config gw.yaml &
#   scripts/pktgen.sh many-flows --rate 200k --flows 1000
#
# Needs root (AF_XDP in the lab's namespaces). Builds the release binaries when they are
# missing (cargo build --release; CARGO_TARGET_DIR is respected; STATEWALL_PKTGEN,
# STATEWALL and STATEWALLCTL name other binaries).
set -euo pipefail

cd "$(dirname "$0")/.."
PROG=pktgen.sh
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
PKTGEN=${STATEWALL_PKTGEN:-$RELEASE/statewall-pktgen}
BIN=${STATEWALL:-$RELEASE/statewall}
CTL=${STATEWALLCTL:-$RELEASE/statewallctl}

case_=''
rate=100k duration=5 count='' flows='' pkt_size='' v6=0 vlan='' src='' dst='' sport='' dport=''
conn_rate='' flowlen='' quiet=0 json=0 lab=0 dry=0
extra=()
while (($#)); do
	case $1 in
	-r | --rate) need "$@" && rate=$2 && shift ;;
	-d | --duration) need "$@" && duration=$2 && shift ;;
	-c | --count) need "$@" && count=$2 && shift ;;
	-f | --flows) need "$@" && flows=$2 && shift ;;
	-s | --pkt-size) need "$@" && pkt_size=$2 && shift ;;
	-6) v6=1 ;;
	--vlan) need "$@" && vlan=$2 && shift ;;
	--src) need "$@" && src=$2 && shift ;;
	--dst) need "$@" && dst=$2 && shift ;;
	--sport) need "$@" && sport=$2 && shift ;;
	--dport) need "$@" && dport=$2 && shift ;;
	--conn-rate) need "$@" && conn_rate=$2 && shift ;;
	--flowlen) need "$@" && flowlen=$2 && shift ;;
	-q | --quiet) quiet=1 ;;
	--json) json=1 ;;
	--lab) lab=1 ;;
	-n | --dry-run) dry=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		extra=("$@")
		break
		;;
	-*) die "unknown option $1 (try --help)" ;;
	*)
		[[ -z $case_ ]] || die "one case at a time ($case_, then $1)"
		case_=$1
		;;
	esac
	shift
done
[[ -n $case_ ]] || {
	usage >&2
	exit 2
}

# The case's traffic; options given explicitly win.
mode=udp def_flows=1 def_size=60 def_dport=9 def_sport=1024-65535
if ((v6)); then def_src=fd00:10::2 def_dst=fd00:10::3; else def_src=10.10.0.2 def_dst=10.10.0.3; fi
# The smallest stateful data segment: headers (Ethernet, IP, TCP) and the 16-byte stamp.
tcp_min=$((14 + (v6 ? 40 : 20) + 20 + 16 + (${#vlan} > 0 ? 4 : 0)))
case $case_ in
single-flow) def_sport=1024 ;;
many-flows) def_flows=10000 ;;
imix) def_flows=1000 def_size=imix ;;
stateful) mode=stateful def_flows=100 def_size=$tcp_min def_dport=80 ;;
conn-rate)
	mode=stateful def_flows=100 def_size=$tcp_min def_dport=80
	conn_rate=${conn_rate:-1k} flowlen=${flowlen:-10}
	;;
syn-flood)
	mode=syn-flood def_dport=80 flowlen=${flowlen:-1}
	if ((v6)); then def_src=fd00:10::2-fd00:10::ffff; else def_src=10.10.0.2-10.10.0.254; fi
	;;
*) die "unknown case $case_ (single-flow, many-flows, imix, stateful, conn-rate, syn-flood)" ;;
esac

if ((lab)); then
	LAB=${LAB:-swpg$$}
else
	LAB=${LAB:-sw}
fi
CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server

args=(--dev "eth0@$CLIENT" --rx-dev "eth0@$SERVER" --mode "$mode"
	--src "${src:-$def_src}" --dst "${dst:-$def_dst}"
	--sport "${sport:-$def_sport}" --dport "${dport:-$def_dport}"
	--flows "${flows:-$def_flows}" --rate "$rate" --duration "$duration"
	--pkt-size "${pkt_size:-$def_size}")
[[ -n $count ]] && args+=(--count "$count")
[[ -n $flowlen ]] && args+=(--flowlen "$flowlen")
[[ -n $conn_rate ]] && args+=(--conn-rate "$conn_rate")
[[ -n $vlan ]] && args+=(--vlan "$vlan")
((quiet)) && args+=(--quiet)
((json)) && args+=(--json)
args+=("${extra[@]}")

if ((dry)); then
	printf '%q ' "$PKTGEN" "${args[@]}"
	echo
	exit 0
fi

[[ $(id -u) -eq 0 ]] || die "needs root (AF_XDP sockets in the lab's network namespaces)"

# --lab's teardown (a lab, the daemon and the generator, all started here).
DPID='' GPID='' LAB_MADE=0 TMP=''
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	if [[ -n $GPID ]] && kill -0 "$GPID" 2>/dev/null; then
		kill -TERM "$GPID" 2>/dev/null # stops sending, prints its report
		wait "$GPID" 2>/dev/null
	fi
	stop_pid "$DPID" 5
	if ((LAB_MADE)); then
		# lab.sh down stops anything left in the lab's namespaces: all was started here.
		LAB=$LAB scripts/lab.sh down >/dev/null 2>&1 || true
		echo "pktgen.sh: lab $LAB removed" >&2
	fi
	[[ -z $TMP ]] || rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "pktgen.sh: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- binaries

build=()
[[ -x $PKTGEN ]] || build+=(-p statewall-pktgen)
if ((lab)); then
	[[ -x $BIN ]] || build+=(-p statewall-dataplane)
	[[ -x $CTL ]] || build+=(-p statewall-control)
fi
if ((${#build[@]})); then
	load_cargo_env
	command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, e.g. with rustup)"
	echo "pktgen.sh: building: cargo build --release ${build[*]}" >&2
	cargo build --release "${build[@]}" >&2
	for b in "$PKTGEN" "$BIN" "$CTL"; do
		[[ $b == "$BIN" || $b == "$CTL" ]] && ((!lab)) && continue
		[[ -x $b ]] || die "$b still missing after the build"
	done
fi

# ---------------------------------------------------------------- against an existing lab

if ((!lab)); then
	for ns in "$CLIENT" "$SERVER"; do
		[[ -e /run/netns/$ns ]] ||
			die "no lab $LAB (netns $ns is missing): scripts/lab.sh up and a gateway first, or --lab"
	done
	if ! ip -n "$GW" link show lan 2>/dev/null | grep -q xdp &&
		! ip -n "$GW" link show br0 >/dev/null 2>&1; then
		echo "pktgen.sh: warning: nothing seems to forward in $GW (no XDP on lan, no bridge)" >&2
	fi
	exec "$PKTGEN" "${args[@]}"
fi

# ---------------------------------------------------------------- --lab: a lab of its own

for ns in "$CLIENT" "$GW" "$SERVER"; do
	[[ ! -e /run/netns/$ns ]] || die "netns $ns exists already: --lab builds (and removes) its own lab; choose another LAB"
done
TMP=$(mktemp -d /tmp/pktgen-lab.XXXXXX)
SOCK=$TMP/control.sock

LAB_MADE=1
LAB=$LAB scripts/lab.sh up >&2
"$BIN" import-iptables bench/lab/gateway.rules >"$TMP/gateway.yaml"
pin=()
cores=$(nproc)
# The gateway on the last core; the generator and the hosts' softirqs have the others.
((cores >= 2)) && pin=(--cpus $((cores - 1)))
ip netns exec "$GW" "$BIN" run --config "$TMP/gateway.yaml" --state none --control-socket "$SOCK" \
	--workers 1 "${pin[@]}" >"$TMP/statewall.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do
	[[ -S $SOCK ]] && "$CTL" --socket "$SOCK" stats >/dev/null 2>&1 && break
	kill -0 "$DPID" 2>/dev/null || break
	sleep 0.1
done
"$CTL" --socket "$SOCK" stats >/dev/null 2>&1 || {
	tail -5 "$TMP/statewall.log" >&2
	die "statewall run did not come up in $GW"
}
echo "pktgen.sh: statewall running in $GW with bench/lab/gateway.rules (pid $DPID)" >&2

rc=0
"$PKTGEN" "${args[@]}" &
GPID=$!
wait "$GPID" || rc=$?
GPID=''
echo "pktgen.sh: the gateway's counters (statewallctl stats):" >&2
"$CTL" --socket "$SOCK" stats 2>&1 | grep -v '^io: ' | sed 's/^/  /' >&2 || true
((rc == 0)) || exit "$rc"
