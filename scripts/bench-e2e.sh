#!/usr/bin/env bash
# End-to-end benchmark: the same generator and traffic through three gateways on the lab, in
# one run, and what each costs per packet.
#
#   scripts/bench-e2e.sh [--runs N] [--duration S] [--flows "1 10000 100000"]
#                        [--traffic "udp tcp"] [--gateways "direct statewall kernel testpmd"]
#                        [--rates "1000 10000 100000"] [--statewall-args "--poll busy"]
#                        [--no-table-full] [--out DIR]
#
# Gateways (each in a fresh lab, scripts/lab.sh, LAB=swe):
#   direct     no gateway: the two hosts joined by one veth pair (lab.sh up --direct), the
#              baseline the others are measured against
#   statewall  `statewall run` (1 worker, pinned to core 1) with bench/lab/gateway.rules,
#              translated by `statewall import-iptables`
#   kernel     a bridge with br_netfilter, the same rules in iptables-legacy, conntrack on;
#              RPS sends the gateway ports' receive processing to core 1
#   testpmd    DPDK's `dpdk-testpmd --no-huge` with two net_af_xdp ports, io forwarding on
#              core 1: no rules, no state, the raw AF_XDP forwarding ceiling
# Traffic, from statewall-pktgen on core 0 (sending on the client's eth0, receiving on the
# server's), as fast as it goes, for each flow count:
#   udp        64-byte frames (pkt_size 60) to UDP port 9, from 10.10.0.2-9 and ports 1024-65535
#   tcp        stateful TCP (pkt_size 70: the smallest with the generator's stamp): handshakes
#              through the gateway, then data both ways, reset at the end
# Each case runs --runs times (default 5) for --duration seconds (default 4); the report gives
# medians. Then, per gateway, UDP at fixed rates below saturation (--rates, pps; 10k flows,
# 2 s each): latency, and how busy the gateway's core is at a light load (an adaptive
# statewall worker sleeps between packets; --statewall-args passes flags to `statewall run`,
# e.g. "--poll busy" or "--busy-poll 0"). With statewall, a table-full run (max 1000 entries; 3000 stateful connections
# opened at 1000/s) shows established flows forwarded while new ones are dropped and counted.
#
# CPU per packet: this machine has 2 cores and the generator needs one (core 0), so the
# comparable figure is what the gateway spends per packet, not its throughput. The gateway is
# pinned to core 1 (statewall's worker, testpmd's forwarding lcore; for the kernel, RPS sends
# the gateway ports' receive processing there). "core-1 ns/pkt" is core 1's busy time
# (/proc/stat: user, system, irq, softirq) over the run per frame delivered; "process
# ns/pkt" the gateway process's threads (schedstat); "machine - direct ns/pkt" both cores'
# busy time per frame minus the same for `direct`. On veth part of the work runs where the
# packet is sent, whatever the pinning: an AF_XDP gateway's receive (the XDP redirect and
# copy into its socket) on the generator's core, and the far host's receive on the gateway's
# core; the report says what each figure leaves in and out.
#
# Needs root. Installs what it needs (scripts/install-deps.sh --bench: DPDK's testpmd, the
# net_af_xdp driver, conntrack-tools) and builds the release binaries. Writes raw results and
# report.md to --out (default bench/e2e-results/DATE) and prints the report.
set -euo pipefail

cd "$(dirname "$0")/.."
PROG=bench-e2e
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
RUNS=5
DURATION=4
FLOWS="1 10000 100000"
TRAFFIC="udp tcp"
GATEWAYS="direct statewall kernel testpmd"
TABLE_FULL=1
RATES="1000 10000 100000"
SW_ARGS=
OUT=
while (($#)); do
	case $1 in
	--runs) RUNS=$2 && shift ;;
	--duration) DURATION=$2 && shift ;;
	--flows) FLOWS=$2 && shift ;;
	--traffic) TRAFFIC=$2 && shift ;;
	--gateways) GATEWAYS=$2 && shift ;;
	--rates) RATES=$2 && shift ;;
	--statewall-args) SW_ARGS=$2 && shift ;;
	--no-table-full) TABLE_FULL=0 ;;
	--out) OUT=$2 && shift ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
need_root "network namespaces, XDP, iptables"
[[ $(nproc) -ge 2 ]] || die "needs 2 cores (one for the generator, one for the gateway)"

scripts/install-deps.sh --bench
load_cargo_env
cargo build --release -q -p statewall-dataplane -p statewall-control -p statewall-pktgen
STATEWALL=$RELEASE/statewall
CTL=$RELEASE/statewallctl
PKTGEN=$RELEASE/statewall-pktgen

export LAB=swe
CLIENT=$LAB-client
GW=$LAB-gw
SERVER=$LAB-server
OUT=${OUT:-bench/e2e-results/$(date -u +%Y-%m-%dT%H%M%SZ)}
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d /tmp/bench-e2e.XXXXXX)
GW_PID=
SOCK=$TMP/control.sock
HZ=$(getconf CLK_TCK)

log() { printf '[bench-e2e %s] %s\n' "$(date +%T)" "$*" >&2; }

stop_gateway() { # SIGINT (testpmd's way out too), up to 5 s, then KILL
	stop_pid "$GW_PID" 5 INT
	GW_PID=
}

cleanup() {
	stop_gateway
	scripts/lab.sh down >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$STATEWALL" import-iptables bench/lab/gateway.rules >"$TMP/gateway.yaml"
"$STATEWALL" check "$TMP/gateway.yaml" >/dev/null
awk -v v4="$TMP/gateway.v4" -v v6="$TMP/gateway.v6" '
	BEGIN { out = v4; printf "" > v6 }
	/^# Generated by ip6tables-save/ { out = v6 }
	{ print > out }' bench/lab/gateway.rules

thread_ns() { # thread_ns PID...: on-CPU nanoseconds of every task of these processes
	local total=0 f ns _
	for pid in "$@"; do
		for f in /proc/"$pid"/task/*/schedstat; do
			read -r ns _ <"$f" 2>/dev/null || continue
			total=$((total + ns))
		done
	done
	echo "$total"
}

busy_ns() { # busy_ns CPU: busy time of `cpu` (all) or `cpu1`, in ns
	awk -v hz="$HZ" -v c="$1" '$1 == c { printf "%.0f\n", ($2 + $3 + $4 + $7 + $8 + $9) * 1e9 / hz }' /proc/stat
}

wait_ctl() {
	for _ in $(seq 100); do
		"$CTL" --socket "$SOCK" stats >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench-e2e: statewall did not come up; its log:" >&2
	cat "$TMP/gateway.log" >&2
	return 1
}

start_gateway() { # start_gateway NAME
	case $1 in
	direct)
		scripts/lab.sh up --direct >/dev/null
		;;
	statewall)
		scripts/lab.sh up >/dev/null
		rm -f "$SOCK"
		# shellcheck disable=SC2086 # SW_ARGS is a list of flags on purpose
		ip netns exec "$GW" "$STATEWALL" run --config "$TMP/gateway.yaml" --state none --workers 1 --cpus 1 \
			--control-socket "$SOCK" $SW_ARGS >"$TMP/gateway.log" 2>&1 &
		GW_PID=$!
		wait_ctl
		;;
	kernel)
		scripts/lab.sh up --kernel >/dev/null
		local p
		for p in lan wan; do
			ip netns exec "$GW" sh -c "echo 2 > /sys/class/net/$p/queues/rx-0/rps_cpus"
		done
		ip netns exec "$GW" iptables-legacy-restore <"$TMP/gateway.v4"
		ip netns exec "$GW" ip6tables-legacy-restore <"$TMP/gateway.v6"
		;;
	testpmd)
		scripts/lab.sh up >/dev/null
		# testpmd runs until its standard input ends; main lcore 0 waits there, lcore 1
		# forwards.
		tail -f /dev/null | ip netns exec "$GW" dpdk-testpmd --no-huge -m 1024 -l 0,1 \
			--main-lcore 0 --no-pci --file-prefix "$LAB" \
			--vdev net_af_xdp0,iface=lan,start_queue=0,queue_count=1 \
			--vdev net_af_xdp1,iface=wan,start_queue=0,queue_count=1 \
			-- --forward-mode=io --nb-cores=1 --total-num-mbufs=32768 --auto-start \
			--stats-period 0 >"$TMP/gateway.log" 2>&1 &
		GW_PID=$!
		for _ in $(seq 100); do
			grep -q "Press enter to exit\|Start automatic packet forwarding\|io packet forwarding - ports=2" \
				"$TMP/gateway.log" 2>/dev/null && break
			kill -0 "$GW_PID" 2>/dev/null || {
				cat "$TMP/gateway.log" >&2
				return 1
			}
			sleep 0.1
		done
		;;
	esac
	# Let the ports settle (neighbour discovery of the hosts, XDP attach).
	sleep 1
}

flush_state() { # between runs, so each starts from an empty table
	case $1 in
	statewall) "$CTL" --socket "$SOCK" conntrack flush >/dev/null ;;
	kernel) ip netns exec "$GW" conntrack -F >/dev/null 2>&1 || true ;;
	esac
}

pktgen_args() { # pktgen_args TRAFFIC FLOWS
	local common=(--dev "eth0@$CLIENT" --rx-dev "eth0@$SERVER" --cpus 0 --quiet --json
		--src 10.10.0.2-10.10.0.9 --dst 10.10.0.3 --sport 1024-65535 --flows "$2")
	case $1 in
	udp) echo "${common[@]}" --mode udp --dport 9 --pkt-size 60 ;;
	tcp) echo "${common[@]}" --mode stateful --dport 80 --pkt-size 70 ;;
	esac
}

one_run() { # one_run GATEWAY NAME PKTGEN-ARGS...
	local gw=$1 name=$2
	shift 2
	flush_state "$gw"
	local t0 c0 m0 t1 c1 m1
	t0=$(thread_ns $GW_PID)
	c0=$(busy_ns cpu1)
	m0=$(busy_ns cpu)
	taskset -c 0 "$PKTGEN" "$@" >"$OUT/raw/$name.json" 2>"$OUT/raw/$name.log" || {
		echo "bench-e2e: statewall-pktgen failed ($name):" >&2
		cat "$OUT/raw/$name.log" >&2
		return 1
	}
	t1=$(thread_ns $GW_PID)
	c1=$(busy_ns cpu1)
	m1=$(busy_ns cpu)
	printf '{"gateway":"%s","process_ns":%d,"core1_ns":%d,"machine_ns":%d}\n' \
		"$gw" $((t1 - t0)) $((c1 - c0)) $((m1 - m0)) >"$OUT/raw/$name.cpu.json"
}

table_full() {
	log "statewall: table-full run (max 1000 entries; 3000 stateful connections opened at 1000/s)"
	# The table is sized at start: restart with a small one.
	stop_gateway
	{
		cat "$TMP/gateway.yaml"
		printf 'conntrack:\n  max: 1000\n'
	} >"$TMP/gateway-small.yaml"
	rm -f "$SOCK"
	ip netns exec "$GW" "$STATEWALL" run --config "$TMP/gateway-small.yaml" --state none --workers 1 --cpus 1 \
		--control-socket "$SOCK" >"$TMP/gateway-small.log" 2>&1 &
	GW_PID=$!
	wait_ctl
	"$CTL" --socket "$SOCK" stats --json >"$OUT/raw/table-full.stats-before.json"
	# shellcheck disable=SC2046 # pktgen_args prints words on purpose
	taskset -c 0 "$PKTGEN" $(pktgen_args tcp 3000) --conn-rate 1000 --duration "$DURATION" \
		>"$OUT/raw/table-full.json" 2>"$OUT/raw/table-full.log"
	"$CTL" --socket "$SOCK" stats --json >"$OUT/raw/table-full.stats-after.json"
	"$CTL" --socket "$SOCK" stats >"$OUT/raw/table-full.stats.txt"
}

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel: $(uname -r)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "testpmd: $(dpkg-query -W -f='${Version}' dpdk-dev 2>/dev/null)"
	echo "command: scripts/bench-e2e.sh --runs $RUNS --duration $DURATION --flows \"$FLOWS\" --traffic \"$TRAFFIC\" --gateways \"$GATEWAYS\" --rates \"$RATES\"${SW_ARGS:+ --statewall-args \"$SW_ARGS\"}"
} >"$OUT/machine.txt"

for gw in $GATEWAYS; do
	log "$gw: lab up"
	start_gateway "$gw"
	for traffic in $TRAFFIC; do
		for flows in $FLOWS; do
			for run in $(seq "$RUNS"); do
				name=$gw-$traffic-$flows-$run
				log "$name"
				# shellcheck disable=SC2046 # pktgen_args prints words on purpose
				one_run "$gw" "$name" $(pktgen_args "$traffic" "$flows") --duration "$DURATION"
			done
		done
	done
	for rate in $RATES; do
		for run in $(seq "$RUNS"); do
			name=$gw-rate-$rate-$run
			log "$name (UDP at $rate pps, 10k flows)"
			# shellcheck disable=SC2046
			one_run "$gw" "$name" $(pktgen_args udp 10000) --rate "$rate" --duration 2
		done
	done
	if [[ $gw == statewall ]]; then
		"$CTL" --socket "$SOCK" stats >"$OUT/raw/statewall-stats.txt"
		((TABLE_FULL)) && table_full
	fi
	stop_gateway
	cp "$TMP/gateway.log" "$OUT/raw/$gw-gateway.log" 2>/dev/null || true
	scripts/lab.sh down >/dev/null
done

"$PY" "$SWLAB" e2e-report "$OUT" | tee "$OUT/report.md"
log "raw results and report: $OUT"
