#!/usr/bin/env bash
# Lab test of the load generator (statewall-pktgen, scripts/pktgen.sh) through the real
# daemon: `statewall run` (1 worker, AF_XDP) in the gateway namespace of a scripts/lab.sh lab
# with bench/lab/gateway.rules translated by `statewall import-iptables`, the generator
# sending on the client's eth0 and receiving on the server's.
#
#   udp-exact         20 kpps of UDP to port 9 over 100 flows for 2 s: every packet sent is
#                     received (sent == received, loss 0), and the gateway forwarded them all
#   loss-rule-drops   flows split between UDP port 9 and the dropped port 10: half lost (the
#                     packets to port 10, to a packet), and the lost count equals the daemon's
#                     rule-drop counter delta
#   stateful          200 real TCP connections: during the run `statewallctl conntrack list`
#                     (parsed by `scripts/swlab nfct`) shows exactly those 200, ESTABLISHED and
#                     ASSURED with the generator's ports; the generator reports 200
#                     established, 0 failed handshakes, no data segment lost
#   conn-rate         stateful TCP at 1000 connections/s, 10 data segments each, then FIN: every
#                     connection a fresh tuple, a NEW entry inserted for each SYN, every closed
#                     one listed TIME_WAIT; no failed handshake, nothing lost
#   ipv6-udp          UDP over IPv6 at 20 kpps: sent == received; IPv6 entries in the table
#   imix              IMIX sizes (7:4:1 of 60, 590, 1514 bytes): sent == received, bytes too
#   syn-flood         5000 SYNs from fresh ports: 5000 NEW entries inserted, listed as
#                     SYN_SENT [UNREPLIED] with those ports; every SYN forwarded
#   pktgen-sh-cases   scripts/pktgen.sh --dry-run: each case's statewall-pktgen command
#   pktgen-sh-lab     scripts/pktgen.sh --lab --json single-flow: a lab of its own, the
#                     report (sent == received), everything removed afterwards
#   pktgen-sh-sigint  scripts/pktgen.sh --lab interrupted (SIGINT) mid-run: exit 130, the
#                     report so far printed, lab and daemon gone
#
#   scripts/test-pktgen.sh [--keep]
#
# Each case prints PASS or FAIL; the last line is "N passed, N failed" (exit 1 on a failure).
# Needs root. Uses ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall}, its
# statewallctl and statewall-pktgen alongside; --keep leaves the work directory (daemon log,
# reports) in /tmp.
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-pktgen
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
CTL=${STATEWALLCTL:-$(dirname "$BIN")/statewallctl}
PKTGEN=${STATEWALL_PKTGEN:-$(dirname "$BIN")/statewall-pktgen}
# scripts/pktgen.sh runs these binaries too.
export STATEWALL=$BIN STATEWALLCTL=$CTL STATEWALL_PKTGEN=$PKTGEN
START=$SECONDS
LAB=swpt$$
CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server
SHLAB=swps$$ # scripts/pktgen.sh --lab's own labs
# The daemon and the generator run at nice -10: on a small shared machine a build running
# alongside can otherwise starve the gateway for long enough to overflow its rings (the
# failure then names the veth port whose kernel counter says where the frames were dropped).
NICE="nice -n -10"
DROPS=
V4=(--src 10.10.0.2 --dst 10.10.0.3)
V6=(--src fd00:10::2 --dst fd00:10::3)

keep_or_help "$@"
need_root "network namespaces, XDP"
need_cmds ip jq timeout env "$PY"
need_bins "$BIN" "$CTL" "$PKTGEN"

TMP=$(mktemp -d /tmp/sw-pktgen.XXXXXX)
SOCK=$TMP/control.sock
LOG=$TMP/statewall.log
DPID=''
BG=() # generators and pktgen.sh runs started in the background

# lab_down (lab.sh down) stops every process in a lab's namespaces: all were started by this
# run.
cleanup() {
	local p
	trap - EXIT INT TERM
	for p in "${BG[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${BG[@]}"; do wait "$p" 2>/dev/null; done
	stop_pid "$DPID"
	lab_down "$LAB"
	for p in /run/netns/"$SHLAB"*-gw; do
		[[ -e $p ]] || continue
		p=${p#/run/netns/}
		lab_down "${p%-gw}"
	done
	if ((keep)); then echo "test-pktgen: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

# ---------------------------------------------------------------- helpers

# pktgen NAME ARGS...: run the generator between the lab's hosts, the JSON report in
# $TMP/NAME.json and its stderr in $TMP/NAME.err.
pktgen() {
	local name=$1 before
	shift
	before=$(veth_drops)
	$NICE timeout 60 "$PKTGEN" --dev "eth0@$CLIENT" --rx-dev "eth0@$SERVER" --quiet --json "$@" \
		>"$TMP/$name.json" 2>"$TMP/$name.err"
	DROPS=$(drops_since "$before")
}
# The kernel's drop counters of the lab's four veth ends (rx_queue_N_drops: frames the XDP
# redirect could not place, the AF_XDP socket's rings being full or its fill ring empty),
# to say where a lost packet went: at the gateway's ports, it did not keep up.
veth_drops() {
	local n
	for n in "$CLIENT eth0" "$GW lan" "$GW wan" "$SERVER eth0"; do
		# shellcheck disable=SC2086 # NETNS IF
		ip netns exec ${n% *} ethtool -S ${n#* } 2>/dev/null |
			awk '/rx_queue_[0-9]+_drops:/ { s += $2 } END { printf "%d ", s }'
	done
}
drops_since() { # drops_since "BEFORE": "client eth0 +N, gw lan +N, ..." for the non-zero ones
	local -a a b
	local names=("client eth0" "gateway lan" "gateway wan" "server eth0") i out=''
	read -ra a <<<"$1"
	read -ra b <<<"$(veth_drops)"
	for i in 0 1 2 3; do
		((${b[i]:-0} > ${a[i]:-0})) && out+="${out:+, }${names[i]} +$((b[i] - a[i]))"
	done
	echo "$out"
}
# j NAME FILTER: a field of report NAME.
j() { jq -r "$2" "$TMP/$1.json" 2>/dev/null; }
report_ok() { # report_ok NAME: the generator ran and wrote a report
	[[ -s $TMP/$1.json ]] && jq -e '.sent >= 0' "$TMP/$1.json" >/dev/null 2>&1
}
# The exact-delivery check shared by the cases: packets sent, all received, none lost.
all_delivered() { # all_delivered NAME MIN-SENT
	local s r l
	report_ok "$1" || {
		fail "no report: $(tail -c 300 "$TMP/$1.err")"
		return
	}
	s=$(j "$1" .sent) r=$(j "$1" .received) l=$(j "$1" .lost)
	((s >= $2)) || fail "sent only $s (expected at least $2)"
	((s == r)) || fail "sent $s, received $r"
	((l == 0)) || fail "lost $l"
	[[ -z $WHY || -z $DROPS ]] || fail "the kernel dropped frames at: $DROPS"
}
# The connection table in JSON lines (swlab nfct), FILTERS as for conntrack list.
ct_json() { ctl conntrack list "$@" | "$PY" "$SWLAB" nfct; }

# The cases run with check (scripts/lib/labtest.sh); pktgen.sh's cases bring their own lab
# and daemon.
daemon_free() { [[ $1 == pktgen-sh-* ]]; }

# ---------------------------------------------------------------- cases

case_udp_exact() {
	local tx0 tx1 s
	tx0=$(total tx_packets)
	pktgen udp "${V4[@]}" --dport 9 --flows 100 --rate 20k --duration 2
	all_delivered udp 20000
	tx1=$(total tx_packets)
	s=$(j udp .sent)
	# The gateway sent at least what arrived (the hosts' own frames may add a few).
	((tx1 - tx0 >= s)) || fail "the gateway sent $((tx1 - tx0)) packets, the generator $s"
	DET="sent $s, received $(j udp .received), lost $(j udp .lost); gateway tx +$((tx1 - tx0)); p50 $(j udp .latency.p50_us) us"
}

case_loss_rule_drops() {
	local d0 d1 s r l pct want rounds rest
	d0=$(total dropped.rule)
	# Flows 0-99 go to port 9, 100-199 to port 10 (source port fastest, then destination port).
	pktgen loss "${V4[@]}" --sport 1000-1099 --dport 9-10 --flows 200 --rate 20k --duration 2
	d1=$(total dropped.rule)
	report_ok loss || {
		fail "no report: $(tail -c 300 "$TMP/loss.err")"
		return
	}
	s=$(j loss .sent) r=$(j loss .received) l=$(j loss .lost) pct=$(j loss .loss_pct)
	((s >= 20000)) || fail "sent only $s"
	((l == d1 - d0)) || fail "lost $l, but the daemon's rule drops grew by $((d1 - d0))"
	((r + l == s)) || fail "received $r + lost $l != sent $s"
	# Packets go to the flows in turn, 0 to 199: of each round of 200, the last 100 (port 10).
	rounds=$((s / 200)) rest=$((s % 200))
	want=$((rounds * 100 + (rest > 100 ? rest - 100 : 0)))
	((l == want)) || fail "lost $l of $s, expected $want (the packets to port 10)"
	# loss_pct says the same (about 50%, exactly 50 only on whole rounds).
	awk -v p="$pct" -v l="$l" -v s="$s" 'BEGIN { d = p - 100 * l / s; exit !(d < 1e-9 && d > -1e-9 && p > 49.7 && p < 50.3) }' ||
		fail "loss_pct $pct for $l of $s"
	[[ -z $WHY || -z $DROPS ]] || fail "the kernel dropped frames at: $DROPS"
	DET="sent $s, lost $l ($(printf '%.2f' "$pct")%, expected $want), rule drops +$((d1 - d0))"
}

# The listed entries of the stateful run's connections, one TSV line each.
stateful_entries() {
	ct_json -p tcp --dport 80 | jq -r 'select(.orig.sport >= 20000 and .orig.sport <= 20199)
		| [.state, .orig.src, .orig.dst, .orig.sport, .orig.dport, .reply.src, .reply.dst,
		   .reply.sport, .reply.dport, (.flags | sort | join(","))] | @tsv' >"$TMP/stateful.tsv"
}
stateful_all_established() {
	stateful_entries &&
		(($(awk -F'\t' '$1 == "ESTABLISHED"' "$TMP/stateful.tsv" | wc -l) == 200))
}
case_stateful() {
	local gpid n good ports est before
	before=$(veth_drops)
	$NICE timeout 60 "$PKTGEN" --dev "eth0@$CLIENT" --rx-dev "eth0@$SERVER" --quiet --json --mode stateful \
		"${V4[@]}" --sport 20000-20199 --dport 80 --flows 200 --rate 10k --duration 4 --pkt-size 70 \
		>"$TMP/stateful.json" 2>"$TMP/stateful.err" &
	gpid=$!
	BG+=("$gpid")
	wait_for 4 stateful_all_established || fail "not 200 ESTABLISHED entries during the run"
	cp "$TMP/stateful.tsv" "$TMP/stateful-during.tsv"
	n=$(wc -l <"$TMP/stateful-during.tsv")
	# Each entry: the client's tuple, the reply reversed, ASSURED (seen both ways).
	good=$(awk -F'\t' '$1 == "ESTABLISHED" && $2 == "10.10.0.2" && $3 == "10.10.0.3" &&
		$5 == 80 && $6 == "10.10.0.3" && $7 == "10.10.0.2" && $8 == 80 && $9 == $4 &&
		$10 == "ASSURED"' "$TMP/stateful-during.tsv" | wc -l)
	ports=$(cut -f4 "$TMP/stateful-during.tsv" | sort -un | wc -l)
	((n == 200 && good == 200 && ports == 200)) ||
		fail "listed $n entries, $good ESTABLISHED/ASSURED with the right tuples, $ports distinct ports"
	wait "$gpid"
	DROPS=$(drops_since "$before")
	report_ok stateful || {
		fail "no report: $(tail -c 300 "$TMP/stateful.err")"
		return
	}
	est=$(j stateful .totals.established)
	((est == 200)) || fail "the generator established $est"
	(($(j stateful .totals.failed_handshakes) == 0)) || fail "failed handshakes: $(j stateful .totals.failed_handshakes)"
	(($(j stateful .totals.syn_sent) == 200)) || fail "SYNs sent: $(j stateful .totals.syn_sent)"
	all_delivered stateful 1000
	DET="listed 200 ESTABLISHED [ASSURED] ports 20000-20199; generator: $est established, $(j stateful .totals.failed_handshakes) failed, $(j stateful .sent) data segments, lost $(j stateful .lost)"
}

case_conn_rate() {
	local i0 i1 syn est closed tw ports other
	i0=$(total inserted)
	pktgen conn --mode stateful "${V4[@]}" --sport 50000-59999 --dport 80 --flows 100 --flowlen 10 \
		--conn-rate 1k --rate 20k --duration 2 --pkt-size 70
	all_delivered conn 10000
	i1=$(total inserted)
	syn=$(j conn .totals.syn_sent) est=$(j conn .totals.established) closed=$(j conn .totals.closed)
	# The last SYNs may still wait for their SYN-ACK when the run stops (50 ms' worth at most).
	((syn >= 1500 && est <= syn && syn - est <= 50 && closed <= est && est - closed <= 100)) ||
		fail "SYNs $syn, established $est, closed $closed"
	(($(j conn .totals.failed_handshakes) == 0 && $(j conn .totals.syn_retransmits) == 0)) ||
		fail "failed handshakes $(j conn .totals.failed_handshakes), SYN retransmits $(j conn .totals.syn_retransmits)"
	((i1 - i0 == syn)) || fail "$syn connections, but the daemon inserted $((i1 - i0)) entries"
	ct_json -p tcp --dport 80 | jq -r 'select(.orig.sport >= 50000 and .orig.sport <= 59999)
		| [.state, .orig.sport] | @tsv' >"$TMP/conn.tsv"
	tw=$(awk -F'\t' '$1 == "TIME_WAIT"' "$TMP/conn.tsv" | wc -l)
	ports=$(cut -f2 "$TMP/conn.tsv" | sort -u | wc -l)
	((tw == closed)) || fail "$tw entries in TIME_WAIT for $closed connections closed"
	# Each connection a tuple of its own. Those the run's end reset are CLOSE, or gone if
	# the gateway had seen no reply yet (nf_ct_kill on a RST with no reply, as the kernel).
	((est <= ports && ports <= syn)) || fail "$ports distinct tuples listed for $est established of $syn"
	other=$(awk -F'\t' '$1 != "TIME_WAIT" && $1 != "CLOSE"' "$TMP/conn.tsv" | wc -l)
	((other == 0)) || fail "$other entries neither TIME_WAIT nor CLOSE"
	DET="$syn SYNs, $est established, $closed closed -> inserted +$((i1 - i0)), $tw TIME_WAIT, $ports distinct ports; $(j conn .sent) data segments, lost $(j conn .lost)"
}

case_ipv6_udp() {
	local n
	pktgen v6 "${V6[@]}" --dport 9 --flows 100 --rate 20k --duration 2
	all_delivered v6 20000
	n=$(ct_json -f ipv6 -p udp --dport 9 | jq -s 'length')
	((n == 100)) || fail "$n IPv6 UDP entries to port 9, expected 100"
	DET="sent $(j v6 .sent), received $(j v6 .received) ($(j v6 .sent_bytes) bytes); $n IPv6 entries"
}

case_imix() {
	local s b avg
	pktgen imix "${V4[@]}" --dport 9 --flows 100 --rate 20k --duration 2 --pkt-size imix
	all_delivered imix 20000
	s=$(j imix .sent) b=$(j imix .sent_bytes)
	(($(j imix .totals.received_bytes) == b)) || fail "bytes: sent $b, received $(j imix .totals.received_bytes)"
	# 7:4:1 of 60, 590 and 1514 bytes: 357.8 on average.
	avg=$(awk -v b="$b" -v s="$s" 'BEGIN { printf "%.1f", b / s }')
	awk -v a="$avg" 'BEGIN { exit !(a > 350 && a < 366) }' || fail "average frame $avg bytes"
	DET="sent $s, received $(j imix .received), $b bytes (average $avg)"
}

case_syn_flood() {
	local i0 i1 c0 c1 n
	i0=$(total inserted) c0=$(ctl conntrack count)
	pktgen syn --mode syn-flood "${V4[@]}" --sport 40000-44999 --dport 80 --flows 1 --flowlen 1 \
		--count 5000 --rate 20k
	i1=$(total inserted) c1=$(ctl conntrack count)
	all_delivered syn 5000
	((i1 - i0 == 5000)) || fail "inserted grew by $((i1 - i0)), expected 5000"
	((c1 > c0)) || fail "the count went from $c0 to $c1"
	n=$(ct_json -p tcp --dport 80 --state SYN_SENT | jq -s '[.[] | select(.orig.sport >= 40000 and
		.orig.sport <= 44999 and (.flags | index("UNREPLIED")))] | length')
	((n == 5000)) || fail "$n SYN_SENT [UNREPLIED] entries from ports 40000-44999"
	DET="sent $(j syn .sent), inserted +$((i1 - i0)), count $c0 -> $c1, $n SYN_SENT [UNREPLIED]"
}

case_pktgen_sh_cases() {
	local c out want
	for c in single-flow:udp many-flows:udp imix:udp stateful:stateful conn-rate:stateful syn-flood:syn-flood; do
		out=$(scripts/pktgen.sh --dry-run "${c%:*}" 2>&1) || {
			fail "${c%:*}: $out"
			continue
		}
		[[ $out == *" --mode ${c#*:} "* && $out == *" --rx-dev eth0@sw-server "* ]] ||
			fail "${c%:*}: $out"
	done
	out=$(scripts/pktgen.sh -n -6 --vlan 7 stateful -- --queues 1)
	want='--src fd00:10::2 --dst fd00:10::3 '
	[[ $out == *"$want"* && $out == *"--pkt-size 94 "* && $out == *"--vlan 7 --queues 1"* ]] ||
		fail "-6 --vlan 7 stateful: $out"
	out=$(scripts/pktgen.sh -n conn-rate --conn-rate 500)
	[[ $out == *"--flowlen 10 --conn-rate 500"* ]] || fail "conn-rate: $out"
	if scripts/pktgen.sh -n no-such-case >/dev/null 2>&1; then fail "an unknown case was accepted"; fi
	DET="6 cases, -6/--vlan/pass-through, unknown case refused"
}

case_pktgen_sh_lab() {
	local rc=0 lab=${SHLAB}a
	DROPS=''
	LAB=$lab timeout 60 scripts/pktgen.sh --lab --json -q --rate 10k --duration 1 single-flow \
		>"$TMP/sh-lab.json" 2>"$TMP/sh-lab.err" || rc=$?
	((rc == 0)) || fail "exit $rc: $(tail -c 300 "$TMP/sh-lab.err")"
	all_delivered sh-lab 5000
	grep -q "lab $lab removed" "$TMP/sh-lab.err" || fail "no 'lab removed' line"
	grep -q '^  drops: ' "$TMP/sh-lab.err" || fail "the gateway's stats were not printed"
	if ls /run/netns/"$lab"-* >/dev/null 2>&1; then fail "the lab's namespaces are left"; fi
	DET="sent $(j sh-lab .sent), received $(j sh-lab .received); lab and daemon removed"
}

sh_running() { grep -q '^statewall-pktgen: ' "$TMP/sh-int.err"; }
case_pktgen_sh_sigint() {
	local pid rc=0 lab=${SHLAB}b
	# As Ctrl-C would: SIGINT to pktgen.sh (restored to its default here, since bash ignores
	# it in background jobs).
	LAB=$lab env --default-signal=INT scripts/pktgen.sh --lab -q --rate 10k --duration 30 single-flow \
		>"$TMP/sh-int.out" 2>"$TMP/sh-int.err" &
	pid=$!
	BG+=("$pid")
	wait_for 20 sh_running || fail "the generator did not start"
	sleep 1
	kill -INT "$pid"
	wait_for 10 eval "! kill -0 $pid" || fail "still running 10 s after SIGINT"
	wait "$pid" || rc=$?
	((rc == 130)) || fail "exit $rc, expected 130"
	grep -q '^received .* lost 0 ' "$TMP/sh-int.out" || fail "no report: $(head -c 300 "$TMP/sh-int.out")"
	grep -q "lab $lab removed" "$TMP/sh-int.err" || fail "no 'lab removed' line"
	if ls /run/netns/"$lab"-* >/dev/null 2>&1; then fail "the lab's namespaces are left"; fi
	DET="exit $rc; $(grep -o '^sent *[0-9]* packets' "$TMP/sh-int.out" | tr -s ' '); lab removed"
}

# ---------------------------------------------------------------- run

echo "test-pktgen: lab $LAB, $BIN run (bench/lab/gateway.rules)"
LAB=$LAB scripts/lab.sh up >"$TMP/lab.log" 2>&1 || die "scripts/lab.sh up failed: $(tail -1 "$TMP/lab.log")"
"$BIN" import-iptables bench/lab/gateway.rules >"$TMP/gateway.yaml" || die "import-iptables failed"
$NICE ip netns exec "$GW" "$BIN" run --config "$TMP/gateway.yaml" --state none --control-socket "$SOCK" \
	--workers 1 --no-pin >"$LOG" 2>&1 &
DPID=$!
sw_up() { [[ -S $SOCK ]] && ctl stats >/dev/null 2>&1 && ip -n "$GW" link show lan | grep -q xdp; }
wait_for 20 sw_up || {
	tail -5 "$LOG" >&2
	die "statewall run did not come up"
}

for c in udp-exact loss-rule-drops stateful conn-rate ipv6-udp imix syn-flood; do
	check "$c"
done
for c in pktgen-sh-cases pktgen-sh-lab pktgen-sh-sigint; do
	check "$c"
done

finish 10
