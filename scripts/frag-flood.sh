#!/usr/bin/env bash
# A measurement, not a test (its result is recorded, it is no part of scripts/test.sh): how
# established traffic fares through the gateway while a flood of IP fragments that never
# complete crosses it, and whether the reassembly memory stays bounded and is given back.
#
# In a scripts/lab.sh lab (MTU 1500 on every veth), the gateway first `statewall run` (1
# worker), then, as a reference, the kernel bridge (br_netfilter, iptables-legacy), both with
# the same ruleset (ESTABLISHED,RELATED accept; INVALID drop; NEW TCP to port 80 and UDP to
# port 5001 from lan accepted; ICMP echo and ICMPv6 echo/NS/NA for the ping check; policy
# DROP) and the same small reassembly limits: statewall's `conntrack:` ipfrag_high_thresh and
# frag6_high_thresh 1 MiB, ipfrag_time and frag6_timeout 5 s; the kernel's sysctls
# net.ipv4.ipfrag_{low,high}_thresh, net.ipv4.ipfrag_time and
# net.netfilter.nf_conntrack_frag6_{low,high}_thresh/_timeout set the same in the gateway's
# namespace. Each gateway, in a fresh lab:
#
#   baseline     established only: statewall-pktgen --mode stateful, --flows TCP connections
#                to port 80 at --rate packets/s (both directions together) for --baseline s
#   flood        the flood (below) starts, 1 s later the same established traffic for
#                --duration s, then the flood stops; the daemon's RSS (VmRSS) is sampled
#                each second (the kernel: /proc/net/sockstat's FRAG memory, IPv4 only)
#   recovery     nothing for the reassembly timeout + 2 s: every held datagram must time out
#                (statewall: timed_out grows, the fragments held come to 0); then
#                ping -s 8000 -c 3 over IPv4 and IPv6 (fragmented both ways) must get 3/3
#   flood-alone  the flood for --flood-alone s without the established traffic: its rate with
#                the core to itself, and what the gateway's port dropped (a diagnostic)
#
# The flood: a python3 generator on the client's eth0 (raw AF_PACKET socket) that prebuilds
# --frames frames per family and sends them in a loop as fast as it goes (--flood-rate caps
# it): IPv4 (10.10.0.2 -> .3, distinct random identifications) and IPv6 (fd00:10::2 -> ::3,
# random 32-bit identifications) alternately; of each family half first fragments (offset 0,
# MF, a UDP header to port 5001) and half middle fragments (offset 1480 / 1448, MF), each with
# 64 bytes of payload, so no datagram can ever complete. It reports what it sent per family.
#
# Placement on a machine of 2 or more cores: the daemon's worker pinned to the last core, the
# established generator on core 0, the flood unpinned (the kernel gateway forwards in the
# senders' softirqs); the daemon and the established generator at nice -10, as
# scripts/test-pktgen.sh runs them (the flood stands for another machine: it gets what CPU
# is left). --no-pin runs all unpinned at nice 0. Each phase also prints `top`'s view of one
# second in its middle (processes over 5% of a core, and steal time), to show what else the
# machine was running.
#
#   scripts/frag-flood.sh [OPTIONS]
#
#   --gateway statewall|kernel|both   (default both)
#   --rate PPS         established packets/s (default 20k)
#   --flows N          established TCP connections (default 100)
#   --duration S       established traffic under the flood (default 20)
#   --baseline S       established traffic alone (default 10)
#   --flood-alone S    the flood alone, 0 to skip (default 10)
#   --flood-rate PPS   cap the flood (frames/s, both families together); 0: as fast as it
#                      goes (default 0)
#   --frames N         prebuilt frames per family (default 8192)
#   --flood-cpus LIST  the flood's cores (taskset -c LIST), or `any` (default: any)
#   --no-pin           no pinning, no nice
#   --keep             keep the work directory (logs, reports) in /tmp
#
# Prints each phase as it ends, then a summary table. Needs root, python3, jq, ping,
# iptables-legacy, and the release binaries statewall, statewallctl, statewall-pktgen
# (${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall} and its neighbours). Its labs
# are swff<PID>s and swff<PID>k. Exit status 0 when it ran, whatever the figures; 2 when a
# gateway could not be set up.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=frag-flood
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
CTL=${STATEWALLCTL:-$(dirname "$BIN")/statewallctl}
PKTGEN=${STATEWALL_PKTGEN:-$(dirname "$BIN")/statewall-pktgen}
[[ $BIN == /* ]] || BIN=$REPO/$BIN
[[ $CTL == /* ]] || CTL=$REPO/$CTL
[[ $PKTGEN == /* ]] || PKTGEN=$REPO/$PKTGEN
START=$SECONDS

GATEWAYS=(statewall kernel) RATE=20k FLOWS=100 DURATION=20 BASELINE=10 ALONE=10
FLOOD_RATE=0 FRAMES=8192 PIN=1 FLOOD_CPUS=any keep=0
THRESH=1048576 LOW=786432 FRAG_TIME=5
METRICS_PORT=9477
need() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (try --help)"; }
while (($#)); do
	case $1 in
	--gateway)
		need "$@"
		case $2 in
		both) GATEWAYS=(statewall kernel) ;;
		statewall | kernel) GATEWAYS=("$2") ;;
		*) die "--gateway statewall, kernel or both" ;;
		esac
		shift
		;;
	--rate) need "$@" && RATE=$2 && shift ;;
	--flows) need "$@" && FLOWS=$2 && shift ;;
	--duration) need "$@" && DURATION=$2 && shift ;;
	--baseline) need "$@" && BASELINE=$2 && shift ;;
	--flood-alone) need "$@" && ALONE=$2 && shift ;;
	--flood-rate) need "$@" && FLOOD_RATE=$2 && shift ;;
	--frames) need "$@" && FRAMES=$2 && shift ;;
	--flood-cpus) need "$@" && FLOOD_CPUS=$2 && shift ;;
	--no-pin) PIN=0 ;;
	--keep) keep=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument $1 (try --help)" ;;
	esac
	shift
done
for v in FLOWS DURATION BASELINE ALONE FRAMES; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "${v,,} must be a whole number"
done
[[ $FLOOD_RATE =~ ^[0-9]+$ ]] || die "--flood-rate must be a whole number of frames/s"

need_root "network namespaces, iptables, XDP, raw sockets"
need_cmds ip iptables-legacy-restore ip6tables-legacy-restore ping jq ethtool timeout taskset \
	nice "$PY"
need_bins "$BIN" "$CTL" "$PKTGEN"

TMP=$(mktemp -d /tmp/sw-fragflood.XXXXXX)
SOCK=$TMP/control.sock
LOG=$TMP/statewall.log
: >"$LOG"
LABS=() DPID='' FPID='' GPID='' SIDE='' LAB='' CLIENT='' GW='' SERVER=''
CORES=$(nproc)
LAST=$((CORES - 1))
NICE=() FLOOD_PIN=() GEN_PIN=() SW_PIN=(--no-pin)
if ((PIN && CORES >= 2)); then
	NICE=(nice -n -10) GEN_PIN=(--cpus 0) SW_PIN=(--cpus "$LAST")
	[[ $FLOOD_CPUS == any ]] || FLOOD_PIN=(taskset -c "$FLOOD_CPUS")
fi

teardown_lab() {
	stop_pid "$GPID"
	stop_pid "$FPID"
	stop_pid "$DPID"
	GPID='' FPID='' DPID=''
	lab_down "$1"
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local l
	trap - EXIT INT TERM
	for l in "${LABS[@]}"; do teardown_lab "$l"; done
	if ((keep)); then echo "$PROG: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

# ---------------------------------------------------------------- ruleset and generator

cat >"$TMP/ff.rules" <<'EOF'
# scripts/frag-flood.sh: the gateway's ruleset, both families.
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -p tcp -m physdev --physdev-in lan -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp -m physdev --physdev-in lan -m udp --dport 5001 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -m physdev --physdev-in lan -m icmp --icmp-type 8 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
# Generated by ip6tables-save
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT
-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -p tcp -m physdev --physdev-in lan -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp -m physdev --physdev-in lan -m udp --dport 5001 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p ipv6-icmp -m physdev --physdev-in lan -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
EOF
awk -v v4="$TMP/ff.v4" -v v6="$TMP/ff.v6" '
	BEGIN { out = v4; printf "" > v6 }
	/^# Generated by ip6tables-save/ { out = v6 }
	{ print > out }' "$TMP/ff.rules"
"$BIN" import-iptables "$TMP/ff.rules" >"$TMP/ff.yaml" 2>"$TMP/import.log" || {
	cat "$TMP/import.log" >&2
	die "statewall import-iptables of the ruleset failed"
}
cat >>"$TMP/ff.yaml" <<EOF
conntrack:
  ipfrag_high_thresh: $THRESH
  ipfrag_low_thresh: $LOW
  ipfrag_time: $FRAG_TIME
  frag6_high_thresh: $THRESH
  frag6_low_thresh: $LOW
  frag6_timeout: $FRAG_TIME
EOF
"$BIN" check "$TMP/ff.yaml" >"$TMP/check.log" 2>&1 || {
	cat "$TMP/check.log" >&2
	die "statewall check of the ruleset failed"
}

# fragflood.py DEV SRCMAC DSTMAC SECONDS FRAMES-PER-FAMILY RATE: see the header. Prints one
# JSON line: frames sent per family, send errors, seconds, pps.
cat >"$TMP/fragflood.py" <<'EOF'
import json, random, socket, struct, sys, time

PAY = 64  # bytes of IP payload in each fragment (a multiple of 8)

def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def payload(first):
    # A first fragment starts with a UDP header (to port 5001, 1408 bytes announced).
    return struct.pack("!HHHH", 40000, 5001, 1408, 0) + bytes(PAY - 8) if first else bytes(PAY)

def v4(macs, ident, first):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + PAY, ident, 0x2000 | (0 if first else 185),
                    64, 17, 0, socket.inet_pton(socket.AF_INET, "10.10.0.2"),
                    socket.inet_pton(socket.AF_INET, "10.10.0.3"))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return macs + b"\x08\x00" + h + payload(first)

def v6(macs, ident, first):
    h = struct.pack("!IHBB16s16s", 0x60000000, 8 + PAY, 44, 64,
                    socket.inet_pton(socket.AF_INET6, "fd00:10::2"),
                    socket.inet_pton(socket.AF_INET6, "fd00:10::3"))
    fh = struct.pack("!BBHI", 17, 0, (0 if first else 1448) | 1, ident)
    return macs + b"\x86\xdd" + h + fh + payload(first)

def main():
    dev, smac, dmac = sys.argv[1:4]
    seconds, n, rate = float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    macs = bytes.fromhex(dmac.replace(":", "")) + bytes.fromhex(smac.replace(":", ""))
    rnd = random.Random()
    ids4 = rnd.sample(range(65536), min(n, 65536))
    ids6 = rnd.sample(range(1 << 32), n)
    frames = []
    for i in range(n):
        frames.append(v4(macs, ids4[i % len(ids4)], i % 2 == 0))
        frames.append(v6(macs, ids6[i], i % 2 == 0))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((dev, 0))
    send = s.send
    batch = 256
    sent = errors = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while True:
        for i in range(0, len(frames), batch):
            for f in frames[i:i + batch]:
                try:
                    send(f)
                except OSError:
                    errors += 1
            sent += len(frames[i:i + batch])
            now = time.monotonic()
            if now >= end:
                break
            if rate:
                ahead = t0 + sent / rate - now
                if ahead > 0:
                    time.sleep(ahead)
        else:
            continue
        break
    el = time.monotonic() - t0
    v4n = (sent + 1) // 2
    print(json.dumps({"sent": sent, "v4": v4n, "v6": sent - v4n, "errors": errors,
                      "seconds": round(el, 3), "pps": round(sent / el), "v4_pps": round(v4n / el),
                      "v6_pps": round((sent - v4n) / el)}), flush=True)

main()
EOF

# ---------------------------------------------------------------- helpers

# shellcheck disable=SC2317 # called through wait_for
sw_up() {
	[[ -S $SOCK ]] && ctl stats >/dev/null 2>&1 &&
		ip -n "$GW" link show lan | grep -q xdp && ip -n "$GW" link show wan | grep -q xdp
}
sw_start() {
	echo "=== $(date +%T) statewall run --workers 1 ${SW_PIN[*]} --metrics $METRICS_PORT" >>"$LOG"
	rm -f "$SOCK"
	"${NICE[@]}" ip netns exec "$GW" "$BIN" run --config "$TMP/ff.yaml" --state none \
		--control-socket "$SOCK" --workers 1 "${SW_PIN[@]}" --metrics "$METRICS_PORT" >>"$LOG" 2>&1 &
	DPID=$!
	wait_for 20 sw_up && daemon_alive
}

side_up() { # side_up statewall|kernel; non-zero with SETUP_ERR set
	SIDE=$1
	LAB=swff$$${SIDE:0:1}
	LABS+=("$LAB")
	CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server
	local kopt=() ns dev
	[[ $SIDE == kernel ]] && kopt=(--kernel)
	LAB=$LAB scripts/lab.sh up "${kopt[@]}" >"$TMP/$SIDE-lab.log" 2>&1 || {
		SETUP_ERR="scripts/lab.sh up failed: $(tail -1 "$TMP/$SIDE-lab.log")"
		return 1
	}
	for ns in "$CLIENT:eth0" "$SERVER:eth0" "$GW:lan" "$GW:wan"; do
		dev=${ns#*:}
		ns=${ns%:*}
		ip -n "$ns" link set "$dev" mtu 1500
	done
	if [[ $SIDE == kernel ]]; then
		{
			nsx "$GW" iptables-legacy-restore <"$TMP/ff.v4" &&
				nsx "$GW" ip6tables-legacy-restore <"$TMP/ff.v6" &&
				nsx "$GW" sysctl -qw net.ipv4.ipfrag_low_thresh="$LOW" \
					net.ipv4.ipfrag_high_thresh="$THRESH" net.ipv4.ipfrag_time="$FRAG_TIME" \
					net.netfilter.nf_conntrack_frag6_low_thresh="$LOW" \
					net.netfilter.nf_conntrack_frag6_high_thresh="$THRESH" \
					net.netfilter.nf_conntrack_frag6_timeout="$FRAG_TIME"
		} 2>"$TMP/kernel-setup.log" || {
			SETUP_ERR="kernel gateway setup failed: $(head -1 "$TMP/kernel-setup.log")"
			return 1
		}
	else
		sw_start || {
			SETUP_ERR="statewall run did not start: $(grep -v '^===' "$LOG" | tail -2 | tr '\n' ' ')"
			return 1
		}
	fi
}

# The kernel's drop counters of the lab's veth ends (rx_queue_N_drops: with XDP, frames the
# redirect could not place in the AF_XDP socket's rings), "client lan wan server".
veth_drops() {
	local n
	for n in "$CLIENT eth0" "$GW lan" "$GW wan" "$SERVER eth0"; do
		# shellcheck disable=SC2086 # NETNS IF
		ip netns exec ${n% *} ethtool -S ${n#* } 2>/dev/null |
			awk '/rx_queue_[0-9]+_drops:/ { s += $2 } END { printf "%d ", s }'
	done
}
# The machine's softirq backlog drops (/proc/net/softnet_stat, second column, all CPUs):
# where the kernel bridge drops what its CPUs do not keep up with.
backlog_drops() {
	local s=0 _a b _r
	while read -r _a b _r; do s=$((s + 16#$b)); done </proc/net/softnet_stat
	echo "$s"
}
drops_since() { # drops_since "VETH-BEFORE" BACKLOG-BEFORE: the non-zero growths, or "none"
	local -a a b
	local names=("client-eth0" "gw-lan" "gw-wan" "server-eth0") i out='' bl
	read -ra a <<<"$1"
	read -ra b <<<"$(veth_drops)"
	for i in 0 1 2 3; do
		((${b[i]:-0} > ${a[i]:-0})) && out+="${out:+ }${names[i]}+$((b[i] - a[i]))"
	done
	bl=$(($(backlog_drops) - $2))
	((bl > 0)) && out+="${out:+ }backlog+$bl"
	echo "${out:-none}"
}

# statewall's reassembly counters (both families added), as JSON; {} for the kernel.
sw_frag() { if [[ $SIDE == statewall ]]; then jctl stats | jq -c '.data.total.fragments // {}'; else echo '{}'; fi; }
# The fragments held now, from the counters: taken, less those dropped, timed out, or sent
# on in a reassembled or passed datagram (assumes none of the last: before the ping).
held() {
	jq -r '(.fragments // 0) - ([to_entries[] | select(.key | startswith("frag_")) | .value] | add // 0)
		- (.timed_out_fragments // 0)' <<<"$1"
}
frag_words() { # the non-zero counters, "k=v k=v"
	jq -r 'to_entries | map(select(.value != 0) | "\(.key)=\(.value)") | join(" ") | if . == "" then "none" else . end' <<<"$1"
}
frag_delta() { # frag_delta BEFORE AFTER: the growths, "k+v ..."
	jq -rn --argjson a "$1" --argjson b "$2" '$b | to_entries | map(select(.value != ($a[.key] // 0))
		| "\(.key)+\(.value - ($a[.key] // 0))") | join(" ") | if . == "" then "none" else . end'
}
rss_kb() { # the daemon's VmRSS in kB ("-" for the kernel)
	if [[ $SIDE == statewall ]] && daemon_alive; then
		awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status"
	else
		echo -
	fi
}
# The kernel's IPv4 reassembly memory in the gateway's namespace (sockstat: FRAG inuse N
# memory M): the bridge's nf_defrag_ipv4 queues. nf_conntrack's IPv6 queues show nowhere.
kfrag() { nsx "$GW" cat /proc/net/sockstat | awk '$1 == "FRAG:" { print $3 "q/" $5 "B" }'; }
# The IPv4 reassembly MIB of the gateway's namespace: "ReasmReqds ReasmFails ReasmTimeout".
kreasm() {
	nsx "$GW" cat /proc/net/snmp | awk '/^Ip: / && !h { split($0, k); h = 1; next }
		/^Ip: / { for (i = 2; i <= NF; i++) v[k[i]] = $i;
			print v["ReasmReqds"], v["ReasmFails"], v["ReasmTimeout"] }'
}
memnow() { # one sample of the gateway's reassembly memory
	if [[ $SIDE == statewall ]]; then echo "$(rss_kb)kB"; else kfrag; fi
}

# est NAME SPORT-BASE SECONDS: the established traffic, its report in $TMP/SIDE-NAME.json.
est_start() {
	"${NICE[@]}" timeout $(($3 + 60)) "$PKTGEN" --dev "eth0@$CLIENT" --rx-dev "eth0@$SERVER" \
		--mode stateful --src 10.10.0.2 --dst 10.10.0.3 --sport "$2-$(($2 + FLOWS - 1))" --dport 80 \
		--flows "$FLOWS" --rate "$RATE" --duration "$3" --pkt-size 70 "${GEN_PIN[@]}" --quiet --json \
		>"$TMP/$SIDE-$1.json" 2>"$TMP/$SIDE-$1.err" &
	GPID=$!
}
est_wait() { wait "$GPID" 2>/dev/null || true; GPID=''; }
est_line() { # est_line NAME: "sent S received R lost L (P%), E established"
	local f=$TMP/$SIDE-$1.json
	if [[ -s $f ]] && jq -e '.sent >= 0' "$f" >/dev/null 2>&1; then
		jq -r '"sent \(.sent) received \(.received) lost \(.lost) (\(.loss_pct * 1000 | round / 1000)%), \(.totals.established)/\(.flows) established, \(.totals.failed_handshakes) failed handshakes, \(.sent_pps | round) pps, p99 \(.latency.p99_us | round) us"' "$f"
	else
		echo "no report: $(tail -c 200 "$TMP/$SIDE-$1.err" | tr '\n' ' ')"
	fi
}
est_loss() { jq -r '.loss_pct // "-"' "$TMP/$SIDE-$1.json" 2>/dev/null || echo -; }

flood_start() { # flood_start NAME SECONDS
	ip netns exec "$CLIENT" "${FLOOD_PIN[@]}" "$PY" "$TMP/fragflood.py" eth0 02:5e:00:00:00:02 \
		02:5e:00:00:00:03 "$2" "$FRAMES" "$FLOOD_RATE" >"$TMP/$SIDE-$1-flood.json" \
		2>"$TMP/$SIDE-$1-flood.err" &
	FPID=$!
}
flood_wait() { wait "$FPID" 2>/dev/null || true; FPID=''; }
flood_line() { # "N frames in S s: P pps (v4 P4, v6 P6)"
	local f=$TMP/$SIDE-$1-flood.json
	if [[ -s $f ]]; then
		jq -r '"\(.sent) frames in \(.seconds) s: \(.pps) pps (IPv4 \(.v4_pps), IPv6 \(.v6_pps)), \(.errors) send errors"' "$f"
	else
		echo "no report: $(tail -c 200 "$TMP/$SIDE-$1-flood.err" | tr '\n' ' ')"
	fi
}
flood_pps() { jq -r '"\(.v4_pps)/\(.v6_pps)"' "$TMP/$SIDE-$1-flood.json" 2>/dev/null || echo -; }

ping_ok() { # ping_ok 4|6 ADDR: "R/3"
	local line
	line=$(in_client timeout 20 ping "-$1" -c 3 -i 0.2 -W 3 -s 8000 "$2" 2>&1 | grep 'packets transmitted')
	echo "$(sed -nE 's/.*, ([0-9]+) received.*/\1/p' <<<"$line" | grep . || echo 0)/3"
}

say() { echo "  [$SIDE] $*"; }

# One second of `top`: the processes over 5% of a core ("comm/pid %"), and the steal time.
cpu_top() {
	top -b -n 2 -d 1 -w 200 2>/dev/null | awk '/^top -/ { n++ } n < 2 { next }
		/^%Cpu/ { for (i = 2; i <= NF; i++) if ($i ~ /^st/) st = $(i - 1) }
		$1 ~ /^[0-9]+$/ && $9 + 0 >= 5 { p = p sep $12 "/" $1 " " int($9) "%"; sep = ", " }
		END { printf "%s; steal %s%%\n", (p == "" ? "none over 5%" : p), st + 0 }'
}

# ---------------------------------------------------------------- one gateway

declare -A SUM
run_side() {
	local side=$1 d0 b0 f0 f1 f2 f3 mem samples k0 k1 k2 flood_s t
	SETUP_ERR=''
	echo "$PROG: $(date +%T) $side gateway ($(if [[ $side == kernel ]]; then echo "bridge + br_netfilter + iptables-legacy"; else echo "statewall run, 1 worker ${SW_PIN[*]}"; fi))"
	if ! side_up "$side"; then
		echo "$PROG: $side: $SETUP_ERR" >&2
		SUM[$side,setup]=$SETUP_ERR
		teardown_lab "$LAB"
		return 1
	fi
	# Bring the hosts' neighbour entries in (and conntrack's ICMP entries go unused).
	in_client ping -c 1 -W 2 10.10.0.3 >/dev/null 2>&1 || true
	in_client ping -6 -c 1 -W 2 fd00:10::3 >/dev/null 2>&1 || true

	# baseline
	d0=$(veth_drops) b0=$(backlog_drops)
	est_start baseline 20000 "$BASELINE"
	sleep $((BASELINE / 2))
	SUM[$side,cpu_base]=$(cpu_top)
	est_wait
	SUM[$side,base]="$(est_line baseline); drops: $(drops_since "$d0" "$b0")"
	SUM[$side,base_loss]=$(est_loss baseline)
	say "baseline:    ${SUM[$side,base]}"
	say "  cpu:       ${SUM[$side,cpu_base]}"

	# flood + established
	f0=$(sw_frag) k0=$(kreasm)
	SUM[$side,mem_before]=$(memnow)
	d0=$(veth_drops) b0=$(backlog_drops)
	flood_s=$((DURATION + 3))
	t=$SECONDS
	flood_start flood "$flood_s"
	sleep 1
	est_start flood 30000 "$DURATION"
	samples=''
	while kill -0 "$FPID" 2>/dev/null; do
		if (((SECONDS - t) >= DURATION / 2 + 1)) && [[ -z ${SUM[$side,cpu_flood]:-} ]]; then
			SUM[$side,cpu_flood]=$(cpu_top)
		else
			sleep 1
		fi
		mem=$(memnow)
		samples+="${samples:+ }$mem"
	done
	flood_wait
	est_wait
	f1=$(sw_frag) k1=$(kreasm)
	SUM[$side,flood]="$(flood_line flood)"
	SUM[$side,flood_pps]=$(flood_pps flood)
	SUM[$side,est]="$(est_line flood); drops: $(drops_since "$d0" "$b0")"
	SUM[$side,est_loss]=$(est_loss flood)
	SUM[$side,mem_during]=$samples
	say "flood:       ${SUM[$side,flood]} ($((SECONDS - t)) s)"
	say "established: ${SUM[$side,est]}"
	say "  cpu:       ${SUM[$side,cpu_flood]:-not sampled}"
	say "memory:      before ${SUM[$side,mem_before]}; each second of the flood: $samples"
	if [[ $side == statewall ]]; then
		SUM[$side,frag_flood]="$(frag_delta "$f0" "$f1"); held at the end $(held "$f1")"
		say "fragments:   ${SUM[$side,frag_flood]}"
	else
		SUM[$side,frag_flood]="IPv4 ReasmReqds/Fails/Timeout $k0 -> $k1"
		say "reassembly:  ${SUM[$side,frag_flood]}"
	fi

	# recovery
	sleep $((FRAG_TIME + 2))
	f2=$(sw_frag) k2=$(kreasm)
	SUM[$side,mem_after]=$(memnow)
	if [[ $side == statewall ]]; then
		SUM[$side,recovery]="after $((FRAG_TIME + 2)) s: $(frag_delta "$f1" "$f2"); held $(held "$f2")"
	else
		SUM[$side,recovery]="after $((FRAG_TIME + 2)) s: IPv4 ReasmReqds/Fails/Timeout $k2, FRAG ${SUM[$side,mem_after]}"
	fi
	SUM[$side,ping]="IPv4 $(ping_ok 4 10.10.0.3), IPv6 $(ping_ok 6 fd00:10::3)"
	f3=$(sw_frag)
	say "recovery:    ${SUM[$side,recovery]}; memory ${SUM[$side,mem_after]}"
	say "ping -s 8000: ${SUM[$side,ping]}$([[ $side == statewall ]] && echo "; fragments $(frag_delta "$f2" "$f3")")"

	# flood alone
	if ((ALONE > 0)); then
		d0=$(veth_drops) b0=$(backlog_drops)
		f2=$(sw_frag)
		flood_start alone "$ALONE"
		sleep $((ALONE / 2))
		SUM[$side,cpu_alone]=$(cpu_top)
		flood_wait
		f3=$(sw_frag)
		SUM[$side,alone]="$(flood_line alone); drops: $(drops_since "$d0" "$b0")"
		SUM[$side,alone_pps]=$(flood_pps alone)
		[[ $side == statewall ]] && SUM[$side,alone]+="; fragments taken +$(jq -rn --argjson a "$f2" --argjson b "$f3" '($b.fragments // 0) - ($a.fragments // 0)')"
		say "flood alone: ${SUM[$side,alone]}"
		say "  cpu:       ${SUM[$side,cpu_alone]}"
	fi
	if [[ $side == statewall ]]; then
		SUM[$side,stats]=$(frag_words "$(sw_frag)")
		SUM[$side,metrics]=$(nsx "$GW" timeout 5 curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
			awk '/^statewall_fragments_total/ && $2 != 0 { sub(/.*what="/, "", $1); sub(/".*/, "", $1); printf "%s%s=%s", s, $1, $2; s = " " }')
		SUM[$side,rss_end]=$(rss_kb)
		say "stats:       fragments: ${SUM[$side,stats]}"
		say "metrics:     statewall_fragments_total: ${SUM[$side,metrics]:-none}"
		daemon_alive || SUM[$side,setup]="the daemon exited"
	fi
	teardown_lab "$LAB"
}

echo "$PROG: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)"
echo "$PROG: established: $FLOWS TCP flows at $RATE pps, baseline ${BASELINE} s, under the flood ${DURATION} s;" \
	"flood: $FRAMES frames per family, $([[ $FLOOD_RATE == 0 ]] && echo "as fast as it goes" || echo "at most $FLOOD_RATE pps");" \
	"limits: high_thresh $THRESH B, timeout $FRAG_TIME s per family;" \
	"$(if ((PIN && CORES >= 2)); then echo "gateway worker on core $LAST, pktgen on core 0, the flood on ${FLOOD_PIN[*]:-any core}, nice -10 for daemon and pktgen"; else echo "unpinned, nice 0"; fi)"
rc=0
for g in "${GATEWAYS[@]}"; do run_side "$g" || rc=2; done

# ---------------------------------------------------------------- summary

echo
echo "$PROG: summary ($((SECONDS - START)) s)"
printf '  %-10s %-20s %-12s %-14s %-16s %s\n' gateway "flood pps v4/v6" "base loss%" "flood loss%" "alone pps v4/v6" "ping -s 8000"
for g in "${GATEWAYS[@]}"; do
	if [[ -n ${SUM[$g,setup]:-} ]]; then
		printf '  %-10s %s\n' "$g" "${SUM[$g,setup]}"
		[[ -z ${SUM[$g,est]:-} ]] && continue
	fi
	printf '  %-10s %-20s %-12s %-14s %-16s %s\n' "$g" "${SUM[$g,flood_pps]:--}" \
		"$(printf '%.3f' "${SUM[$g,base_loss]:-0}" 2>/dev/null || echo -)" \
		"$(printf '%.3f' "${SUM[$g,est_loss]:-0}" 2>/dev/null || echo -)" \
		"${SUM[$g,alone_pps]:--}" "${SUM[$g,ping]:--}"
done
for g in "${GATEWAYS[@]}"; do
	[[ -n ${SUM[$g,est]:-} ]] || continue
	echo "  $g:"
	echo "    established, baseline:    ${SUM[$g,base]}"
	echo "      cpu:                    ${SUM[$g,cpu_base]:-}"
	echo "    established, under flood: ${SUM[$g,est]}"
	echo "      cpu:                    ${SUM[$g,cpu_flood]:-}"
	echo "    flood:                    ${SUM[$g,flood]}"
	echo "    flood alone:              ${SUM[$g,alone]:-skipped}"
	[[ -z ${SUM[$g,cpu_alone]:-} ]] || echo "      cpu:                    ${SUM[$g,cpu_alone]}"
	if [[ $g == statewall ]]; then
		echo "    fragments, flood phase:   ${SUM[$g,frag_flood]}"
		echo "    fragments, recovery:      ${SUM[$g,recovery]}"
		echo "    fragments, whole run:     ${SUM[$g,stats]}"
		echo "    VmRSS kB:                 before ${SUM[$g,mem_before]}, during ${SUM[$g,mem_during]}, after ${SUM[$g,mem_after]}, end ${SUM[$g,rss_end]}kB"
	else
		echo "    IPv4 reassembly (MIB):    ${SUM[$g,frag_flood]}"
		echo "    recovery:                 ${SUM[$g,recovery]}"
		echo "    sockstat FRAG (IPv4):     before ${SUM[$g,mem_before]}, during ${SUM[$g,mem_during]}"
	fi
done
exit "$rc"
