#!/usr/bin/env bash
# Lab test of the cutover (issue 12): a kernel bridge firewall (br_netfilter, iptables-legacy)
# carrying live connections hands them over to statewall on the same ports, and statewall
# hands them back, through the conntrack-tools save format (`conntrack -L -o save` into
# `statewallctl conntrack restore`; `statewallctl conntrack save` into `conntrack -R -`).
#
# Both sides run the same strict ruleset (scripts/test-cutover.sh writes it in iptables-save
# form, loads it into the kernel and translates it with `statewall import-iptables`):
# INVALID drop, ESTABLISHED,RELATED accept, NEW only from lan and, for TCP, only on a SYN
# (`--tcp-flags FIN,SYN,RST,ACK SYN` / `--syn`), policy DROP; nf_conntrack_tcp_loose=0 on the
# kernel side, tcp_loose: 0 in statewall's config. A connection whose entry is lost is never
# picked up again mid-stream: its packets are dropped.
#
# The live traffic, client -> server across the switches: an iperf3 upload and an iperf3 -R
# download (the server sends), 3 idle-but-open TCP connections that send a line every 0.1 s
# and log each echo (`swlab netpeer tcp-keep`), a UDP echo flow (`udp-keep`). tcpdump on both
# hosts records every TCP RST.
#
#   kernel              the kernel bridge carries it all; its table has the entries
#                       (tcp_loose=0 checked)
#   to-statewall        `conntrack -L -o save` in the gateway namespace, the kernel's table
#                       flushed, the bridge taken down (lan/wan out of br0, br0 deleted),
#                       `statewall run --state none` on lan/wan, `statewallctl conntrack
#                       restore FILE`: every line added; afterwards every flow goes on (each
#                       TCP echo connection echoes, UDP too), statewall sees no packet as NEW or
#                       INVALID and drops none
#   to-kernel           `statewallctl conntrack save | conntrack -R -` into the (empty) kernel
#                       table, statewall stopped (SIGTERM by PID, exit 0), the bridge back with
#                       the same rules: every flow goes on, the kernel's INVALID rule and DROP
#                       policy count no packet; both iperf3 runs complete (exit 0), their
#                       longest stalls bounded by the gaps
#   no-restore-sw       the proof that the test can fail: the same switch to statewall without
#                       the restore: the TCP echo connections stall (2 s, not one echo),
#                       statewall drops their packets and makes no entry for them; the restore
#                       afterwards brings them back
#   no-restore-kernel   the same the other way: back to the kernel without `conntrack -R`: the
#                       connections stall, the kernel's INVALID rule drops their packets;
#                       `conntrack -R` afterwards brings them back
#   no-reset            over the whole run: no TCP RST on either host, no echo connection
#                       closed
#
# Each switch prints its gap: the time the ports forward nothing a connection knows (kernel ->
# statewall: from the bridge's removal until the restore is in; statewall -> kernel: from
# SIGTERM until the bridge is up), and the longest silence each application saw (echo to
# echo; iperf3's longest run of empty 0.25 s intervals).
#
#   scripts/test-cutover.sh [--keep]
#
# Needs root, conntrack (conntrack-tools), iptables-legacy, iperf3, tcpdump. Uses
# ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall} and its statewallctl; --keep
# leaves the work directory (saved lines, logs, captures) in /tmp. Its lab is swco<PID>. The
# last line is "N passed, N failed" (exit 1 on a failure).
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-cutover
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
CTL=${STATEWALLCTL:-$(dirname "$BIN")/statewallctl}
[[ $BIN == /* ]] || BIN=$REPO/$BIN
[[ $CTL == /* ]] || CTL=$REPO/$CTL
START=$SECONDS
LAB=swco$$
CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server
SRV4=10.10.0.3
KEEP_PORTS=(40001 40002 40003) # the TCP echo connections' source ports
UDP_PORT=40011
IPERF_DUR=10  # seconds: both iperf3 runs span the two live switches
IPERF_RATE=40M
RUN=3 # seconds each side carries the traffic after a switch before it is checked
RESULT_WIDTH=17

keep_or_help "$@"
need_root "network namespaces, iptables, XDP"
need_cmds ip conntrack iptables-legacy iptables-legacy-restore ip6tables-legacy iperf3 tcpdump \
	jq ethtool timeout "$PY"
need_bins "$BIN" "$CTL"

TMP=$(mktemp -d /tmp/sw-cutover.XXXXXX)
SOCK=$TMP/control.sock
LOG=$TMP/statewall.log
DPID=''
BG=()  # servers and traffic
CAP=() # the tcpdumps

cleanup() {
	local p
	trap - EXIT INT TERM
	for p in "${CAP[@]}" "${BG[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${CAP[@]}" "${BG[@]}"; do wait "$p" 2>/dev/null; done
	stop_pid "$DPID"
	lab_down "$LAB"
	if ((keep)); then echo "$PROG: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

in_gw() { ip netns exec "$GW" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
now_s() { date +%s.%N; }
running() { kill -0 "$1" 2>/dev/null; }
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
grows() { (($(lines "$1") > $2)); }
# The echo flows in order: the TCP connections' source ports, then the UDP flow's.
FLOWS=("${KEEP_PORTS[@]}" "$UDP_PORT")
# counts: each echo log's line count now, in FLOWS' order, on one line.
counts() {
	local p out=()
	for p in "${FLOWS[@]}"; do out+=("$(lines "$TMP/keep-$p.log")"); done
	echo "${out[*]}"
}
# all_grow COUNTS: every echo log has grown past its count in COUNTS (a line of `counts`).
all_grow() {
	local -a base
	local i
	read -ra base <<<"$1"
	for i in "${!FLOWS[@]}"; do
		grows "$TMP/keep-${FLOWS[i]}.log" "${base[i]}" || return 1
	done
}
# The longest silence (ms) between two echoes in LOG from epoch FROM on, the one since the
# last echo included.
echo_gap_ms() {
	awk -v from="$2" -v now="$(now_s)" '
		$1 >= from - 0.5 { if (prev != "" && $1 - prev > max) max = $1 - prev; prev = $1 }
		END { if (prev == "" || now - prev > max) max = now - (prev == "" ? from : prev); printf "%d\n", max * 1000 }' "$1"
}
# The longest silence of all the echo flows since FROM, "max (port)".
max_echo_gap() {
	local p g best=0 who=''
	for p in "${FLOWS[@]}"; do
		g=$(echo_gap_ms "$TMP/keep-$p.log" "$1")
		((g > best)) && best=$g who=$p
	done
	echo "$best $who"
}
closed_any() { grep -l closed "$TMP"/keep-*.log 2>/dev/null | xargs -r -n1 basename | tr '\n' ' '; }

# ---------------------------------------------------------------- the two firewalls

write_rules() {
	cat >"$TMP/cutover.rules" <<'EOF'
# scripts/test-cutover.sh: the gateway's ruleset, loaded into the kernel (iptables-legacy-restore)
# and translated for statewall (statewall import-iptables). NEW only from lan, TCP only on a SYN.
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m physdev --physdev-in lan -m tcp --dport 5201:5202 --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p tcp -m physdev --physdev-in lan -m tcp --dport 7001 --syn -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp -m physdev --physdev-in lan -m udp --dport 7002 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
EOF
	{
		echo "# scripts/test-cutover.sh: cutover.rules translated; tcp_loose as the kernel side's sysctl"
		echo "conntrack: {tcp_loose: 0}"
		"$BIN" import-iptables --family ipv4 "$TMP/cutover.rules" 2>"$TMP/import.log" | grep -v '^#'
	} >"$TMP/cutover.yaml"
	grep -q 'syn: true' "$TMP/cutover.yaml" && grep -q 'comp: syn' "$TMP/cutover.yaml" ||
		die "statewall import-iptables did not translate the SYN matches: $(cat "$TMP/import.log")"
	"$BIN" check "$TMP/cutover.yaml" >"$TMP/check.log" 2>&1 || {
		cat "$TMP/check.log" >&2
		die "statewall check of the translated ruleset failed"
	}
}

# The same rules again, counters zeroed; IPv6 (off on the hosts) dropped as statewall does.
kernel_rules() {
	in_gw iptables-legacy-restore <"$TMP/cutover.rules" &&
		in_gw ip6tables-legacy -P FORWARD DROP &&
		in_gw sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
}

bridge_up() {
	ip -n "$GW" link add br0 type bridge &&
		in_gw sysctl -qw net.ipv6.conf.br0.disable_ipv6=1 &&
		ip -n "$GW" link set lan master br0 &&
		ip -n "$GW" link set wan master br0 &&
		ip -n "$GW" link set br0 up
}

bridge_down() {
	ip -n "$GW" link set lan nomaster &&
		ip -n "$GW" link set wan nomaster &&
		ip -n "$GW" link del br0
}

# The kernel's FORWARD counters: "INVALID-rule-packets policy-DROP-packets".
kernel_drops() {
	in_gw iptables-legacy -L FORWARD -v -n -x | awk '
		NR == 1 { pol = $5 }
		/ctstate INVALID/ { inv = $1 }
		END { printf "%d %d\n", inv, pol }'
}
kernel_count() { in_gw conntrack -C 2>/dev/null || echo -1; }

sw_ready() { daemon_alive && ctl stats >/dev/null 2>&1; }

# statewall on lan/wan until its control socket answers (10 s at most).
sw_start() {
	echo "=== $(date +%T.%N) statewall run" >>"$LOG"
	rm -f "$SOCK"
	# ip netns exec execs statewall: $! is the daemon's own PID (a function run with & would
	# be a subshell's, which SIGTERM ends while the daemon goes on).
	ip netns exec "$GW" "$BIN" run --config "$TMP/cutover.yaml" --state none --control-socket "$SOCK" \
		--no-pin >>"$LOG" 2>&1 &
	DPID=$!
	local deadline=$(($(now_ms) + 10000))
	until sw_ready; do
		if ! daemon_alive || (($(now_ms) > deadline)); then return 1; fi
		sleep 0.01
	done
}

# SIGTERM by PID; STOP_RC is its exit status (KILL after 5 s: 137).
sw_stop() {
	STOP_RC=''
	[[ -n $DPID ]] || return 0
	kill -TERM "$DPID" 2>/dev/null
	local tries=500
	while running "$DPID" && ((tries-- > 0)); do sleep 0.01; done
	running "$DPID" && kill -KILL "$DPID"
	wait "$DPID" 2>/dev/null
	STOP_RC=$?
	DPID=''
}

# "NEW INVALID dropped" of the running daemon's total.
sw_counts() {
	jctl stats | jq -r '.data.total | "\(.ctstate.new // 0) \(.ctstate.invalid // 0) \(.dropped_total // 0)"'
}
# The daemon's TCP entries for the echo connections.
sw_keep_entries() {
	jctl conntrack list -p tcp --dport 7001 | jq -r '.data.entries | length'
}

# ---------------------------------------------------------------- the switches

# kernel -> statewall: export, bridge down, statewall up, (restore). Sets GAP (ms: bridge gone
# until the restore is in), UP (ms: bridge gone until statewall answers), SAVE (the lines),
# T_SWITCH (epoch s). Returns 1 (WHY set) when a step fails.
N_SWITCH=0
to_statewall() {
	local restore=$1 t0 t1 t2 out
	N_SWITCH=$((N_SWITCH + 1))
	SAVE=$TMP/kernel-$N_SWITCH.save
	in_gw conntrack -L -o save >"$SAVE" 2>"$SAVE.err" || {
		fail "conntrack -L -o save failed: $(head -c 200 "$SAVE.err")"
		return 1
	}
	T_SWITCH=$(now_s)
	t0=$(now_ms)
	bridge_down || {
		fail "could not take the bridge down"
		return 1
	}
	# The kernel keeps no stale entry: on the way back only `conntrack -R` can fill its table.
	in_gw conntrack -F >/dev/null 2>&1
	sw_start || {
		fail "statewall did not come up: $(grep -v '^===' "$LOG" | tail -3 | tr '\n' ' ')"
		return 1
	}
	t1=$(now_ms)
	if ((restore)); then
		out=$(ctl conntrack restore "$SAVE" 2>&1) || {
			fail "statewallctl conntrack restore failed: $out"
			return 1
		}
		RESTORE_OUT=$out
	fi
	t2=$(now_ms)
	UP=$((t1 - t0)) GAP=$((t2 - t0))
}

# statewall -> kernel: ((restore)): save | conntrack -R -; SIGTERM; the rules and the bridge
# back. Sets GAP (ms: SIGTERM until the bridge is up), STOPPED (ms: SIGTERM until statewall
# exited), SAVE, T_SWITCH.
to_kernel() {
	local restore=$1 t0 t1 n
	N_SWITCH=$((N_SWITCH + 1))
	SAVE=$TMP/sw-$N_SWITCH.save
	n=$(kernel_count)
	((n == 0)) || fail "the kernel's table holds $n entries before the switch back (expected none)"
	if ((restore)); then
		# As an operator would: a pipe into conntrack -R (a copy kept for the later cases).
		ctl conntrack save 2>"$SAVE.err" | tee "$SAVE" | in_gw conntrack -R - >"$SAVE.r.out" 2>&1
		local rc=("${PIPESTATUS[@]}")
		[[ ${rc[*]} == "0 0 0" ]] ||
			fail "statewallctl conntrack save | conntrack -R -: exit ${rc[*]}: $(head -c 200 "$SAVE.r.out" "$SAVE.err")"
	else
		ctl conntrack save >"$SAVE" 2>"$SAVE.err" || fail "statewallctl conntrack save failed: $(head -c 200 "$SAVE.err")"
	fi
	T_SWITCH=$(now_s)
	t0=$(now_ms)
	sw_stop
	[[ $STOP_RC == 0 ]] || fail "statewall exited $STOP_RC on SIGTERM"
	STOPPED=$(($(now_ms) - t0))
	kernel_rules && bridge_up || {
		fail "could not bring the kernel bridge back"
		return 1
	}
	t1=$(now_ms)
	GAP=$((t1 - t0))
}

# ---------------------------------------------------------------- cases

daemon_free() { true; } # the cases start and stop the daemon themselves

IPERF_UP='' IPERF_DOWN=''
case_kernel() {
	local p n
	wait_for 5 all_grow "0 0 0 0" || fail "the echo flows do not run through the kernel bridge"
	sleep 1
	running "$IPERF_UP" && running "$IPERF_DOWN" || fail "iperf3 ended early"
	[[ $(in_gw sysctl -n net.netfilter.nf_conntrack_tcp_loose) == 0 ]] || fail "nf_conntrack_tcp_loose is not 0"
	in_gw conntrack -L -o save >"$TMP/kernel-0.save" 2>/dev/null
	for p in "${KEEP_PORTS[@]}"; do
		grep -q -- "-p tcp --sport $p --dport 7001 .*--state ESTABLISHED" "$TMP/kernel-0.save" ||
			fail "the kernel has no ESTABLISHED entry for :$p -> :7001"
	done
	for p in 5201 5202; do
		n=$(grep -c -- "--dport $p .*--state ESTABLISHED" "$TMP/kernel-0.save")
		((n == 2)) || fail "the kernel has $n ESTABLISHED entries for iperf3 on $p (expected 2: control, data)"
	done
	grep -q -- "-p udp --sport $UDP_PORT --dport 7002" "$TMP/kernel-0.save" || fail "the kernel has no UDP entry"
	DET="$(wc -l <"$TMP/kernel-0.save") kernel entries, tcp_loose=0; drops $(kernel_drops | awk '{print "INVALID " $1 ", policy " $2}')"
}

# After a live switch: every echo flow echoes on through the next RUN s, none is closed.
flows_continue() {
	local -a base now
	local i
	read -ra base <<<"$(counts)"
	sleep "$RUN"
	read -ra now <<<"$(counts)"
	for i in "${!FLOWS[@]}"; do
		# 0.1 s a line: at least half of them in RUN seconds after the gap.
		((now[i] - base[i] >= RUN * 5)) ||
			fail "flow :${FLOWS[i]} echoed $((now[i] - base[i])) times in ${RUN}s after the switch"
	done
	[[ -z $(closed_any) ]] || fail "closed by the peer: $(closed_any)"
}

case_to_statewall() {
	local n before after g
	to_statewall 1 || return
	((GAP > MAX_GAP)) && MAX_GAP=$GAP
	n=$(wc -l <"$SAVE")
	# Every line added, but the UDP flow's when the client's next datagram re-opened it (NEW
	# from lan is allowed) between statewall's start and the restore: then it is present.
	local added present
	read -r added present < <(sed -n 's/^restored: \([0-9]*\) added, \([0-9]*\) already present, 0 expired$/\1 \2/p' <<<"$RESTORE_OUT")
	[[ -n $added ]] && ((added + present == n && present <= 1)) ||
		fail "restore said: $RESTORE_OUT (expected $n lines added, the UDP flow's perhaps present)"
	local est
	est=$(jctl conntrack list -p tcp --state ESTABLISHED | jq -r '.data.entries | length')
	((est == ${#KEEP_PORTS[@]} + 4)) ||
		fail "statewall holds $est ESTABLISHED TCP entries after the restore (expected $((${#KEEP_PORTS[@]} + 4)): the echo connections, iperf3's control and data x2)"
	sleep 0.05
	before=$(sw_counts)
	flows_continue
	after=$(sw_counts)
	local b a
	read -ra b <<<"$before"
	read -ra a <<<"$after"
	((a[0] == b[0] && a[1] == b[1] && a[2] == b[2])) ||
		fail "after the restore statewall saw $((a[0] - b[0])) packets as NEW, $((a[1] - b[1])) INVALID, dropped $((a[2] - b[2])): $(jctl stats | jq -c '.data.total.dropped | with_entries(select(.value > 0))')"
	running "$IPERF_UP" && running "$IPERF_DOWN" || fail "iperf3 ended during the statewall phase"
	g=$(max_echo_gap "$T_SWITCH")
	GAPS+=("kernel->statewall: gap ${GAP} ms (statewall up in ${UP} ms), longest echo silence ${g% *} ms")
	((${g% *} <= 2 * GAP + 800)) || fail "flow :${g#* } was silent ${g% *} ms, the gap was $GAP ms"
	DET="gap $GAP ms (bridge down -> statewall answers $UP ms -> restored); $RESTORE_OUT; longest echo silence ${g% *} ms; dropped in the gap ${b[2]}; $(ctl conntrack count) entries"
}

case_to_kernel() {
	local n drops g rc j stall
	daemon_alive || {
		fail "statewall is not running"
		return
	}
	to_kernel 1 || return
	((GAP > MAX_GAP)) && MAX_GAP=$GAP
	n=$(wc -l <"$SAVE")
	((n >= ${#KEEP_PORTS[@]} + 5)) || fail "statewall saved only $n lines"
	local k
	k=$(kernel_count)
	((k >= n)) || fail "the kernel holds $k entries after conntrack -R of $n lines"
	flows_continue
	read -ra drops <<<"$(kernel_drops)"
	((drops[0] == 0 && drops[1] == 0)) ||
		fail "the kernel dropped ${drops[0]} packets as INVALID and ${drops[1]} by policy after conntrack -R"
	g=$(max_echo_gap "$T_SWITCH")
	GAPS+=("statewall->kernel: gap ${GAP} ms (statewall stopped in ${STOPPED} ms), longest echo silence ${g% *} ms")
	((${g% *} <= 2 * GAP + 800)) || fail "flow :${g#* } was silent ${g% *} ms, the gap was $GAP ms"
	DET="gap $GAP ms (SIGTERM -> statewall gone $STOPPED ms -> rules, bridge up); $n lines through conntrack -R; longest echo silence ${g% *} ms"
	# Both iperf3 runs end on their own, exit 0, stalls bounded by the two switches' gaps.
	for j in up down; do
		local pid=IPERF_${j^^}
		local tries=100
		while running "${!pid}" && ((tries-- > 0)); do sleep 0.1; done
		wait "${!pid}"
		rc=$?
		stall=$(jq -r '[.intervals[].sum | [.seconds, .bytes]] | reduce .[] as $i ({run: 0, max: 0};
			if $i[1] == 0 then .run += $i[0] | .max = ([.max, .run] | max) else .run = 0 end)
			| .max * 1000 | floor' "$TMP/iperf3-$j.json" 2>/dev/null || echo -1)
		if ((rc != 0)); then
			fail "iperf3 ($j) exit $rc: $(jq -r '.error // empty' "$TMP/iperf3-$j.json" 2>/dev/null | head -c 150)"
		else
			((stall >= 0 && stall <= 2 * MAX_GAP + 500)) || fail "iperf3 ($j) stalled $stall ms (the longest gap was $MAX_GAP ms)"
			DET+="; iperf3 $j: $(jq -r '.end.sum_received.bytes' "$TMP/iperf3-$j.json") bytes, longest stall $stall ms, $(jq -r '.end.sum_sent.retransmits // 0' "$TMP/iperf3-$j.json") retransmits"
			GAPS+=("iperf3 $j: longest run of empty 0.25 s intervals $stall ms")
		fi
	done
	IPERF_UP='' IPERF_DOWN=''
}

# The echo connections stall: none of them echoes between two counts 2 s apart.
stalled() {
	local -a s0 s1
	local i moved=''
	read -ra s0 <<<"$(counts)"
	sleep 2
	read -ra s1 <<<"$(counts)"
	for i in "${!KEEP_PORTS[@]}"; do
		((s1[i] == s0[i])) || moved+=" :${KEEP_PORTS[i]}(+$((s1[i] - s0[i])))"
	done
	[[ -z $moved ]] || fail "without the restore these still echoed:$moved"
}

# Back after the late restore: every TCP echo connection echoes again, within 8 s (TCP's
# retransmission timer has backed off meanwhile).
resumed() {
	local r0 t0=$SECONDS
	r0=$(counts)
	wait_for 8 all_grow "$r0" || fail "the connections did not come back after the late restore"
	RESUME_S=$((SECONDS - t0))
}

case_no_restore_sw() {
	local b a n out
	to_statewall 0 || return
	sleep 0.3
	b=$(sw_counts)
	stalled
	a=$(sw_counts)
	n=$(sw_keep_entries)
	((n == 0)) || fail "statewall made $n entries for the echo connections without the restore"
	local bb aa
	read -ra bb <<<"$b"
	read -ra aa <<<"$a"
	((aa[2] > bb[2])) || fail "statewall dropped nothing while the connections stalled"
	DET="no restore: 2 s without an echo, $((aa[2] - bb[2])) packets dropped, no entry"
	# The lines make the difference: restored now, the connections come back.
	out=$(ctl conntrack restore "$SAVE" 2>&1) || fail "the late restore failed: $out"
	resumed
	DET+="; restored late ($out): echoing again after ${RESUME_S} s"
}

case_no_restore_kernel() {
	local d0 d1 n
	daemon_alive || {
		fail "statewall is not running"
		return
	}
	to_kernel 0 || return
	sleep 0.3
	read -ra d0 <<<"$(kernel_drops)"
	stalled
	read -ra d1 <<<"$(kernel_drops)"
	((d1[0] > d0[0])) || fail "the kernel's INVALID rule dropped nothing while the connections stalled"
	n=$(in_gw conntrack -L -p tcp --dport 7001 2>/dev/null | grep -c .)
	((n == 0)) || fail "the kernel made $n entries for the echo connections without conntrack -R"
	DET="no conntrack -R: 2 s without an echo, $((d1[0] - d0[0])) packets dropped as INVALID, no entry"
	in_gw conntrack -R - <"$SAVE" >"$SAVE.r.out" 2>&1 || fail "the late conntrack -R failed: $(head -c 200 "$SAVE.r.out")"
	resumed
	DET+="; conntrack -R late: echoing again after ${RESUME_S} s"
}

case_no_reset() {
	local p n=0 c
	for p in "${CAP[@]}"; do stop_pid "$p"; done
	CAP=()
	for c in client server; do
		c=$(tcpdump -r "$TMP/rst-$c.pcap" -n 2>/dev/null | tee "$TMP/rst-$c.txt" | grep -c .)
		n=$((n + c))
	done
	((n == 0)) || fail "$n TCP RSTs: $(head -c 300 "$TMP/rst-client.txt" "$TMP/rst-server.txt" | tr '\n' ' ')"
	[[ -z $(closed_any) ]] || fail "closed by the peer: $(closed_any)"
	local total=0
	for p in "${FLOWS[@]}"; do total=$((total + $(lines "$TMP/keep-$p.log"))); done
	DET="0 RSTs seen by the client and the server over 4 switches; $total echoes"
}

# ---------------------------------------------------------------- run

write_rules
echo "$PROG: lab $LAB (kernel bridge <-> $BIN run on the same ports lan/wan)"
LAB=$LAB scripts/lab.sh up --kernel >"$TMP/lab.log" 2>&1 || die "scripts/lab.sh up --kernel failed: $(tail -1 "$TMP/lab.log")"
for ns in "$CLIENT" "$SERVER"; do
	# IPv4 only: no router solicitation or MLD report for either firewall to drop.
	nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
kernel_rules 2>"$TMP/rules.log" || die "loading the kernel's rules failed: $(head -1 "$TMP/rules.log")"
: >"$LOG"

# The RST recorders, then the servers, then the traffic.
for side in client server; do
	ns=$CLIENT
	[[ $side == server ]] && ns=$SERVER
	ip netns exec "$ns" tcpdump -i eth0 -n -U -w "$TMP/rst-$side.pcap" 'tcp[tcpflags] & tcp-rst != 0' \
		>"$TMP/tcpdump-$side.log" 2>&1 &
	CAP+=("$!")
done
ip netns exec "$SERVER" iperf3 -s -1 -p 5201 >"$TMP/iperf3-s1.log" 2>&1 &
BG+=("$!")
ip netns exec "$SERVER" iperf3 -s -1 -p 5202 >"$TMP/iperf3-s2.log" 2>&1 &
BG+=("$!")
ip netns exec "$SERVER" "$PY" "$SWLAB" netpeer serve-tcp 7001 >"$TMP/serve-tcp.log" 2>&1 &
BG+=("$!")
ip netns exec "$SERVER" "$PY" "$SWLAB" netpeer serve-udp 7002 >"$TMP/serve-udp.log" 2>&1 &
BG+=("$!")
for p in tcp:5201 tcp:5202 tcp:7001 udp:7002; do
	wait_for 10 ns_listening "$SERVER" "${p%:*}" "${p#*:}" || die "nothing listens on the server's $p"
done
for side in client server; do
	wait_for 5 grep -q 'listening on' "$TMP/tcpdump-$side.log" || die "tcpdump ($side) did not start: $(cat "$TMP/tcpdump-$side.log")"
done

ip netns exec "$CLIENT" timeout 60 iperf3 -c "$SRV4" -p 5201 -t "$IPERF_DUR" -b "$IPERF_RATE" \
	-i 0.25 --connect-timeout 3000 -J >"$TMP/iperf3-up.json" 2>&1 &
IPERF_UP=$!
BG+=("$IPERF_UP")
ip netns exec "$CLIENT" timeout 60 iperf3 -c "$SRV4" -p 5202 -R -t "$IPERF_DUR" -b "$IPERF_RATE" \
	-i 0.25 --connect-timeout 3000 -J >"$TMP/iperf3-down.json" 2>&1 &
IPERF_DOWN=$!
BG+=("$IPERF_DOWN")
for p in "${KEEP_PORTS[@]}"; do
	ip netns exec "$CLIENT" "$PY" "$SWLAB" netpeer tcp-keep "$SRV4" 7001 "$p" "$TMP/keep-$p.log" \
		2>"$TMP/keep-$p.err" &
	BG+=("$!")
done
ip netns exec "$CLIENT" "$PY" "$SWLAB" netpeer udp-keep "$SRV4" 7002 "$UDP_PORT" "$TMP/keep-$UDP_PORT.log" \
	2>"$TMP/keep-$UDP_PORT.err" &
BG+=("$!")

GAPS=()
MAX_GAP=0
check kernel
check to-statewall
check to-kernel
check no-restore-sw
check no-restore-kernel
check no-reset

echo
for g in "${GAPS[@]}"; do echo "  $g"; done
finish 15
