#!/usr/bin/env bash
# Reloads under load (issue 13, item 4): `statewallctl apply` of two rulesets in turn, many
# times a second, while long-lived TCP connections and an iperf3 stream run through the real
# daemon (`statewall run`, 2 workers, AF_XDP, in a scripts/lab.sh lab). Both rulesets accept
# the running traffic (they differ in rules for other ports and in order), so a reload must
# cost nothing:
#
#   reloads     every apply answered with the next generation; the last one running
#   flows       no connection reset or closed, no line waiting 2 s or more for its echo
#               (`swlab netpeer tcp-many`: each connection sends a line every 0.5 s)
#   iperf3      the stream ran the whole time: no interval of a second without data
#   drops       no packet dropped by a rule or a policy (stats' dropped.rule and
#               dropped.policy did not move), none malformed or for a full table
#
#   scripts/test-reload.sh [--applies N] [--rate N] [--flows N] [--keep]
#
# The defaults (20 applies at 10 a second, 200 connections) are the regression run of
# scripts/test.sh; the long run is `--applies 100 --flows 1000` (docs/reliability.md has its
# figures). Each case prints PASS or FAIL; the last line is "N passed, N failed" (exit 1 on
# a failure). Needs root. Uses ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall}
# and its statewallctl; --keep leaves the work directory. Its lab is sw-rl-PID.
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-reload
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
CTL=${STATEWALLCTL:-$(dirname "$BIN")/statewallctl}
[[ $BIN == /* ]] || BIN=$REPO/$BIN
[[ $CTL == /* ]] || CTL=$REPO/$CTL
START=$SECONDS
SRV4=10.10.0.3
APPLIES=20 RATE=10 FLOWS=200

args=()
while (($#)); do
	case $1 in
	--applies) need "$@" && APPLIES=$2 && shift ;;
	--rate) need "$@" && RATE=$2 && shift ;;
	--flows) need "$@" && FLOWS=$2 && shift ;;
	*) args+=("$1") ;;
	esac
	shift
done
keep_or_help "${args[@]}"
need_root "network namespaces, XDP"
need_cmds ip iperf3 jq timeout "$PY"
need_bins "$BIN" "$CTL"

TMP=$(mktemp -d /tmp/sw-reload.XXXXXX)
chmod 755 "$TMP"
SOCK=$TMP/run/control.sock
LOG=$TMP/statewall.log
LAB=sw-rl-$$
CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server
DPID=''
BG=()

cleanup() {
	local p
	trap - EXIT INT TERM
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
	stop_pid "$DPID"
	lab_down "$LAB"
	if ((keep)); then echo "$PROG: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

# Two rulesets that accept the same running traffic: the connections to 7001 and iperf3's
# to 5201 from the lan, established both ways, ICMP and ICMPv6 (the hosts' neighbour
# discovery and MLD). B adds rules for other ports and reorders. Both log what they drop, so
# that a drop says what it was.
cat >"$TMP/a.yaml" <<'EOF'
conntrack:
  max: 65536
forward:
  policy: drop
  rules:
    - {ctstate: invalid, action: drop}
    - {ctstate: [established, related], action: accept}
    - {in_port: lan, proto: tcp, dport: [7001, 5201], ctstate: new, action: accept}
    - {proto: [icmp, icmpv6], action: accept}
    - {action: log, log: {prefix: "reload-drop: "}}
EOF
cat >"$TMP/b.yaml" <<'EOF'
conntrack:
  max: 65536
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, proto: tcp, dport: 8080, ctstate: new, action: accept, comment: not used}
    - {in_port: lan, proto: tcp, dport: 5201, ctstate: new, action: accept}
    - {in_port: lan, proto: tcp, dport: 7001, ctstate: new, action: accept}
    - {in_port: wan, proto: udp, dport: 53, action: drop, comment: not used either}
    - {proto: [icmp, icmpv6], action: accept}
    - {action: log, log: {prefix: "reload-drop: "}}
EOF

echo "$PROG: lab $LAB; $APPLIES applies at $RATE/s, $FLOWS connections and an iperf3 stream"
LAB=$LAB LAB_QUEUES=2 scripts/lab.sh up >"$TMP/lab.log" 2>&1 ||
	die "scripts/lab.sh up failed: $(tail -1 "$TMP/lab.log")"
ip netns exec "$GW" "$BIN" run --config "$TMP/a.yaml" --state none --control-socket "$SOCK" \
	--workers 2 --no-pin >"$LOG" 2>&1 &
DPID=$!
sw_up() { [[ -S $SOCK ]] && ctl stats >/dev/null 2>&1 && ip -n "$GW" link show lan | grep -q xdp; }
wait_for 20 sw_up || {
	tail -5 "$LOG" >&2
	die "statewall run did not come up"
}
in_server "$PY" "$SWLAB" netpeer serve-tcp 7001 >"$TMP/serve.log" 2>&1 &
in_server iperf3 -s -p 5201 >"$TMP/iperf3-s.log" 2>&1 &
for p in 7001 5201; do
	wait_for 10 ns_listening "$SERVER" tcp "$p" || die "nothing listens on the server's tcp $p"
done
drops() { jctl stats | jq '[.data.total.dropped.rule, .data.total.dropped.policy, .data.total.dropped.malformed, .data.total.dropped.table_full] | map(. // 0) | add'; }
generation() { jctl stats | jq -r '.data.generation'; }

# The load: the connections (open before the applies start), then iperf3.
SECS=$((APPLIES / RATE + 6))
in_client "$PY" "$SWLAB" netpeer tcp-many "$SRV4" 7001 20000 "$FLOWS" "$SECS" "$TMP/ready" \
	>"$TMP/many.json" 2>"$TMP/many.err" &
BG+=($!)
MANY=$!
wait_for 60 test -e "$TMP/ready" || die "the $FLOWS connections did not open: $(tail -2 "$TMP/many.err")"
D0=$(drops)
G0=$(generation)
in_client iperf3 -c "$SRV4" -p 5201 -t $((SECS - 2)) -i 1 --json >"$TMP/iperf3.json" 2>&1 &
BG+=($!)
IPERF=$!
sleep 1

case_reloads() {
	local i f out bad=0 t0 t1
	t0=$(date +%s.%N)
	for ((i = 1; i <= APPLIES; i++)); do
		f=$TMP/a.yaml
		((i % 2)) && f=$TMP/b.yaml
		out=$(ctl apply "$f" 2>&1) || { bad=$((bad + 1)) && echo "$out" >>"$TMP/apply.err"; }
		grep -q "^applied: generation $((G0 + i)) " <<<"$out" || bad=$((bad + 1))
		# The next apply at t0 + i/RATE: a fixed rate, however long an apply took.
		sleep "$(awk -v t0="$t0" -v i="$i" -v r="$RATE" -v now="$(date +%s.%N)" \
			'BEGIN { w = t0 + i / r - now; printf "%.3f", (w > 0 ? w : 0) }')"
	done
	t1=$(date +%s.%N)
	((bad == 0)) || fail "$bad applies not answered with their generation ($(head -c 200 "$TMP/apply.err" 2>/dev/null))"
	(($(generation) == G0 + APPLIES)) || fail "generation $(generation), expected $((G0 + APPLIES))"
	DET="generations $G0..$((G0 + APPLIES)), $(awk -v n="$APPLIES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }') applies/s"
}

case_flows() {
	wait "$MANY" 2>/dev/null
	local j
	j=$(cat "$TMP/many.json")
	[[ -n $j ]] || { fail "tcp-many printed nothing: $(tail -2 "$TMP/many.err")"; return; }
	(($(jq .resets <<<"$j") == 0)) || fail "connections reset or closed: $j"
	(($(jq .stalled <<<"$j") == 0)) || fail "connections stalled: $j"
	(($(jq .echoes <<<"$j") > FLOWS)) || fail "too few echoes: $j"
	DET="$FLOWS connections, $(jq .echoes <<<"$j") echoes, the longest wait $(jq .max_wait_ms <<<"$j") ms"
}

case_iperf3() {
	wait "$IPERF" 2>/dev/null
	local empty secs
	empty=$(jq '[.intervals[].sum.bytes | select(. == 0)] | length' "$TMP/iperf3.json" 2>/dev/null)
	secs=$(jq '.intervals | length' "$TMP/iperf3.json" 2>/dev/null)
	[[ $secs =~ ^[0-9]+$ ]] && ((secs >= SECS - 3)) || { fail "iperf3 did not run: $(tail -c 300 "$TMP/iperf3.json")"; return; }
	((empty == 0)) || fail "$empty of $secs one-second intervals without data"
	DET="$secs s, $(jq '.end.sum_received.bits_per_second / 1e9 * 100 | floor / 100' "$TMP/iperf3.json") Gbit/s"
}

case_drops() {
	local d1
	d1=$(drops)
	((d1 == D0)) || fail "$((d1 - D0)) packets dropped (rule, policy, malformed, table full) during the reloads: $(ctl log 2>/dev/null | tail -3 | cut -c1-220 | tr '\n' '|')"
	DET="dropped $D0 before, $d1 after"
}

for c in reloads flows iperf3 drops; do
	check "$c"
done

finish 15
