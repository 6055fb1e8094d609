#!/usr/bin/env bash
# Lab test of statewallctl against the real daemon: `statewall run` (2 workers, AF_XDP) in the
# gateway namespace of a scripts/lab.sh lab, its control socket and --metrics, real peers in
# the client and server namespaces (curl <-> python3 http.server, ping, iperf3, and
# `scripts/swlab netpeer`'s long-lived TCP and UDP flows with fixed source ports): what
# statewallctl says about real traffic through the real daemon.
#
#   kernel-nfct         a kernel-oracle lab (lab.sh up --kernel): the kernel's own
#                       /proc/net/nf_conntrack, parsed by `swlab nfct` (the reference)
#   show-counters       per-rule packet/byte counters grow with the pings sent
#   stats               rx/tx and rule-drop deltas match N pings and N denied datagrams;
#                       --per-core sums to the total; --json parses
#   apply               during an iperf3: new generation, new rule in effect, no empty second
#   apply-bad           during an iperf3: file:line:col, generation and rules kept
#   apply-watch         apply --watch follows edits of the file: a broken save is refused
#                       (file:line:col), a good one is a new generation with its rule in effect
#   conntrack-list      the TCP and UDP flows with the right tuples and state, parsed by
#                       `swlab nfct` and equal to what the kernel listed for the same flows
#   conntrack-filters   list -p / --dport / --state / -s / -f select what they say
#   conntrack-flush-tcp flushing the established TCP flow stalls it (NEW needs SYN here)
#   conntrack-flush-udp the flushed UDP flow re-opens as NEW and keeps going
#   conntrack-flush-all everything flushed, live flows come back
#   set-get             set udp_timeout 2: a UDP flow expires in ~2 s; bad values refused
#   hist                counts, p50 <= p99 <= max, --per-core sums, --reset
#   top                 statewallctl top in tmux during traffic: per-core rows, q quits,
#                       terminal restored
#   log                 a `log` rule on denied datagrams: `statewallctl log` shows one
#                       kernel-format line per datagram (prefix, IN=lan OUT=wan, DPT), -n
#                       the newest, -f follows a new one; the daemon's stderr has them too
#   metrics             --metrics scraped over HTTP agrees with stats
#   shutdown            SIGTERM: exit 0, the signal logged, socket removed, XDP detached
#
# What needs no real daemon or traffic is control/tests/ctl.rs's (cargo test): the socket's
# modes, `check`, `conntrack count` and `get`, and the protocol's answers to garbage,
# oversized, silent and many concurrent clients.
#
#   scripts/test-control.sh [--keep]
#
# Each case prints PASS or FAIL; the last line is "N passed, N failed" (exit 1 on a failure).
# Needs root. Uses ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall} and
# ${STATEWALLCTL:-${CARGO_TARGET_DIR:-target}/release/statewallctl}; --keep leaves the work
# directory (daemon log, rulesets, outputs) in /tmp.
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-control
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
CTL=${STATEWALLCTL:-$RELEASE/statewallctl}
[[ $BIN == /* ]] || BIN=$REPO/$BIN
[[ $CTL == /* ]] || CTL=$REPO/$CTL
START=$SECONDS
CLI4=10.10.0.2
SRV4=10.10.0.3
WORKERS=2
METRICS=127.0.0.1:9100

keep_or_help "$@"
need_root "network namespaces, XDP"
need_cmds ip iptables-legacy curl ping iperf3 jq tmux ss timeout "$PY"
need_bins "$BIN" "$CTL"

TMP=$(mktemp -d /tmp/sw-control.XXXXXX)
chmod 755 "$TMP"
SOCK=$TMP/run/control.sock
LOG=$TMP/statewall.log
TMUX_SOCK=swctl$$
LABS=()
DPID=''
BG=() # background processes started in the root namespace (watchers, pings, clients)

# lab_down (lab.sh down) stops every process in a lab's namespaces: all were started by this
# run.
cleanup() {
	local l p
	trap - EXIT INT TERM
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null
	stop_pid "$DPID"
	for l in "${LABS[@]}"; do lab_down "$l"; done
	if ((keep)); then echo "test-control: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

# ---------------------------------------------------------------- helpers

rule_pkts() { jctl show | jq -r ".data.stages[] | select(.name == \"forward\") | .rules[$1].packets"; }
rule_bytes() { jctl show | jq -r ".data.stages[] | select(.name == \"forward\") | .rules[$1].bytes"; }
generation() { jctl stats | jq -r '.data.generation'; }
ge() { (($1 >= $2)); }
at_least() { # at_least MIN CMD...: CMD prints a number >= MIN
	local v
	v=$("${@:2}") && [[ $v =~ ^[0-9]+$ ]] && ((v >= $1))
}
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
grows() { # grows FILE COUNT: FILE has more than COUNT lines
	(($(lines "$1") > $2))
}
# The parsed (swlab nfct) entry of the flow from source port $2 in listing file $1, reduced to
# what the kernel and statewall must agree on.
flow_of() {
	"$PY" "$SWLAB" nfct "$1" | jq -c --argjson sp "$2" \
		'select(.orig.sport == $sp) | {proto, protonum, state, orig, reply, flags: (.flags | sort)}'
}
sw_list() { ctl conntrack list >"$TMP/list.txt" 2>"$TMP/list.err"; }
tcp_established_timeout() {
	ctl conntrack list 2>/dev/null | "$PY" "$SWLAB" nfct 2>/dev/null |
		jq -se 'any(.[]; .proto == "tcp" and .orig.sport == 40001 and .timeout > 431900)' >/dev/null
}
sw_flow() { sw_list && flow_of "$TMP/list.txt" "$1"; }
has_flag() { [[ $(sw_flow "$1" | jq -r --arg f "$2" '.flags | index($f) != null') == true ]]; }
ct_get_tcp() { # the listed entry of the client's TCP flow from source port $1 to 7001
	ctl conntrack get -p tcp -s "$CLI4" -d "$SRV4" --sport "$1" --dport 7001
}

# The cases run with check (scripts/lib/labtest.sh); kernel-nfct runs before the daemon, and
# shutdown stops it (clearing DPID).
RESULT_WIDTH=20
daemon_free() { [[ $1 == kernel-nfct ]]; }

lab_up() { # lab_up PREFIX [--kernel]
	LAB=$1
	LABS+=("$LAB")
	CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server
	LAB=$1 LAB_QUEUES=$WORKERS scripts/lab.sh up "${@:2}" >"$TMP/$1-lab.log" 2>&1 ||
		die "scripts/lab.sh up $* failed: $(tail -1 "$TMP/$1-lab.log")"
	in_server "$PY" "$SWLAB" netpeer serve-tcp 7001 >"$TMP/$1-tcp7001.log" 2>&1 &
	in_server "$PY" "$SWLAB" netpeer serve-udp 7002 >"$TMP/$1-udp7002.log" 2>&1 &
	in_server "$PY" "$SWLAB" netpeer serve-udp 9999 >"$TMP/$1-udp9999.log" 2>&1 &
	in_server "$PY" -m http.server 80 --bind 0.0.0.0 --directory "$TMP/pub" >"$TMP/$1-http80.log" 2>&1 &
	in_server "$PY" -m http.server 8080 --bind 0.0.0.0 --directory "$TMP/pub" >"$TMP/$1-http8080.log" 2>&1 &
	in_server iperf3 -s -p 5201 >"$TMP/$1-iperf3.log" 2>&1 &
	local p
	for p in tcp:7001 udp:7002 udp:9999 tcp:80 tcp:8080 tcp:5201; do
		wait_for 10 ns_listening "$SERVER" "${p%:*}" "${p#*:}" || die "nothing listens on the server's $p"
	done
}
keep_flow() { # keep_flow tcp|udp PORT SPORT LOG: a long-lived flow from the client
	in_client "$PY" "$SWLAB" netpeer "$1-keep" "$SRV4" "$2" "$3" "$4" 2>>"$TMP/peer.err" &
	KEEP_PID=$!
}
renew_tcp_flow() { # renew_tcp_flow SPORT LOG: the long-lived TCP client replaced by a fresh one
	kill "$TCP_PID" 2>/dev/null
	keep_flow tcp 7001 "$1" "$2"
	TCP_PID=$KEEP_PID
	BG+=("$TCP_PID")
	wait_for 5 grows "$2" 0 || fail "a new TCP connection is not admitted"
}

# ---------------------------------------------------------------- rulesets and data

mkdir -p "$TMP/pub"
head -c $((1 << 20)) /dev/urandom >"$TMP/pub/data.bin"
printf 'statewall control suite\n' >"$TMP/pub/index.html"
chmod -R a+rX "$TMP/pub"

# Rules are numbered from 0; the cases count on these positions.
base_rules() { # base_rules ACTION-FOR-8080 ACTION-FOR-9999
	cat <<EOF
forward:
  policy: drop
  rules:
    - {ctstate: invalid, action: drop, comment: invalid}
    - {ctstate: [established, related], action: accept, comment: established}
    - {in_port: lan, proto: tcp, dport: [80, 5201, 7001], syn: true, ctstate: new, action: accept, comment: new TCP only on a SYN}
    - {in_port: lan, proto: udp, dport: [5201, 7002], ctstate: new, action: accept, comment: udp}
    - {in_port: lan, proto: icmp, icmp_type: echo-request, ctstate: new, action: accept, comment: ping}
    - {in_port: lan, proto: udp, dport: 9999, ctstate: new, action: $2, comment: udp 9999}
    - {in_port: lan, proto: tcp, dport: 8080, syn: true, ctstate: new, action: $1, comment: tcp 8080}
EOF
}
base_rules "reject, reject_with: tcp-reset" drop >"$TMP/gw.yaml"
base_rules accept drop >"$TMP/gw-open8080.yaml"
cat >"$TMP/bad.yaml" <<'EOF'
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - proto: tcp
      dprt: 8080
      action: drop
EOF
for f in gw gw-open8080; do
	"$BIN" check "$TMP/$f.yaml" >"$TMP/$f.check" 2>&1 || {
		cat "$TMP/$f.check" >&2
		die "statewall check $f.yaml failed"
	}
done

# ---------------------------------------------------------------- the kernel's listing

# The same flows through the kernel oracle: its /proc/net/nf_conntrack is what swlab nfct is
# written against, and what statewall's listing of the same flows must equal.
k_assured() { # the kernel lists the UDP flow as ASSURED
	ip netns exec "$GW" cat /proc/net/nf_conntrack >"$TMP/kernel.nfct" &&
		[[ $(flow_of "$TMP/kernel.nfct" 40002 | jq -r '.flags | index("ASSURED") != null') == true ]]
}
case_kernel_nfct() {
	local ktcp kudp
	# Conntrack runs in a namespace once a rule there uses it.
	ip netns exec "$GW" iptables-legacy -A FORWARD -m conntrack --ctstate INVALID -j DROP
	keep_flow tcp 7001 40001 "$TMP/k-tcp.log"
	keep_flow udp 7002 40002 "$TMP/k-udp.log"
	in_client ping -c 2 -i 0.2 -W 2 "$SRV4" >/dev/null 2>&1 || fail "ping through the bridge failed"
	wait_for 8 k_assured || fail "the kernel's UDP flow did not become ASSURED"
	if ! "$PY" "$SWLAB" nfct "$TMP/kernel.nfct" >"$TMP/kernel.json" 2>"$TMP/kernel.err"; then
		fail "swlab nfct cannot parse the kernel's listing: $(head -c 150 "$TMP/kernel.err")"
		return
	fi
	ktcp=$(flow_of "$TMP/kernel.nfct" 40001)
	kudp=$(flow_of "$TMP/kernel.nfct" 40002)
	echo "$ktcp" >"$TMP/kernel-tcp.json"
	echo "$kudp" >"$TMP/kernel-udp.json"
	[[ $(jq -r .state <<<"$ktcp") == ESTABLISHED ]] || fail "kernel TCP flow: $ktcp"
	[[ $(jq -c .reply <<<"$kudp") == '{"dport":40002,"dst":"10.10.0.2","sport":7002,"src":"10.10.0.3"}' ]] ||
		fail "kernel UDP flow: $kudp"
	jq -se 'any(.[]; .proto == "icmp")' "$TMP/kernel.json" >/dev/null || fail "no ICMP entry in the kernel's listing"
	DET="$(wc -l <"$TMP/kernel.json") kernel entries parsed; tcp $(jq -r '.state + " " + (.flags | join(","))' <<<"$ktcp"), udp $(jq -r '.flags | join(",")' <<<"$kudp")"
}

# ---------------------------------------------------------------- the daemon's cases

case_show_counters() {
	local p1 p4 b1 out
	p1=$(rule_pkts 1) p4=$(rule_pkts 4) b1=$(rule_bytes 1)
	in_client ping -c 5 -i 0.2 -W 2 "$SRV4" >/dev/null 2>&1 || fail "ping failed"
	# One echo request opened the flow (rule 4), the other 9 packets were ESTABLISHED (rule 1).
	wait_for 5 at_least $((p4 + 1)) rule_pkts 4 || fail "rule 4 (ping) did not count the NEW request"
	wait_for 5 at_least $((p1 + 9)) rule_pkts 1 || fail "rule 1 (established) did not count 9 packets"
	(($(rule_pkts 4) == p4 + 1)) || fail "rule 4 counted $(($(rule_pkts 4) - p4)), expected 1"
	(($(rule_bytes 1) > b1)) || fail "rule 1's bytes did not grow"
	out=$(ctl show) || fail "show failed"
	grep -q '^generation [0-9]* from ' <<<"$out" || fail "show: no generation line"
	grep -Eq '^ +4 +[0-9]+ +[0-9]+  accept +.*# ping' <<<"$out" || fail "show: no rule 4 row"
	ctl show >"$TMP/show.txt"
	DET="rule 4 +$(($(rule_pkts 4) - p4)), rule 1 +$(($(rule_pkts 1) - p1)) packets"
}

case_stats() {
	local rx tx drop r5 ch n=50 pings=20 j sum
	rx=$(total rx_packets) tx=$(total tx_packets) drop=$(total dropped.rule) r5=$(rule_pkts 5)
	ch=$(total cache_hits)
	in_client ping -c "$pings" -i 0.05 -W 2 "$SRV4" >"$TMP/stats-ping.txt" 2>&1 ||
		fail "ping failed"
	in_client "$PY" "$SWLAB" netpeer udp-burst "$SRV4" 9999 40009 "$n" >/dev/null || fail "udp-burst failed"
	wait_for 5 at_least $((rx + 2 * pings + n)) total rx_packets || fail "rx grew by $(($(total rx_packets) - rx)), expected >= $((2 * pings + n))"
	wait_for 5 at_least $((tx + 2 * pings)) total tx_packets || fail "tx grew by $(($(total tx_packets) - tx)), expected >= $((2 * pings))"
	wait_for 5 at_least $((drop + n)) total dropped.rule || fail "rule drops grew by $(($(total dropped.rule) - drop)), expected >= $n"
	wait_for 5 at_least $((r5 + n)) rule_pkts 5 || true
	(($(rule_pkts 5) == r5 + n)) || fail "rule 5 (udp 9999 drop) counted $(($(rule_pkts 5) - r5)), expected $n"
	# No rule tests TCP flags for ESTABLISHED packets: their verdicts come from the flow's cache.
	wait_for 5 at_least $((ch + pings)) total cache_hits || fail "cache hits grew by $(($(total cache_hits) - ch)), expected >= $pings"
	j=$(jctl stats --per-core) || fail "stats --per-core --json failed"
	jq -e . >/dev/null <<<"$j" || fail "stats --json is not JSON"
	(($(jq '.data.per_core | length' <<<"$j") == WORKERS)) || fail "per_core has $(jq '.data.per_core | length' <<<"$j") rows"
	sum=$(jq '[.data.per_core[].rx_packets] | add' <<<"$j")
	((sum == $(jq '.data.total.rx_packets' <<<"$j"))) || fail "per-core rx sums to $sum, total $(jq '.data.total.rx_packets' <<<"$j")"
	ctl stats --per-core >"$TMP/stats.txt" || fail "stats --per-core failed"
	grep -q '^core0 ' "$TMP/stats.txt" && grep -q '^core1 ' "$TMP/stats.txt" &&
		grep -q '^total ' "$TMP/stats.txt" || fail "stats --per-core: rows missing"
	grep -Eq '^drops: .*rule=[0-9]+' "$TMP/stats.txt" || fail "stats: no rule drops line"
	DET="rx +$(($(total rx_packets) - rx)), tx +$(($(total tx_packets) - tx)), rule drops +$(($(total dropped.rule) - drop)), rule 5 +$(($(rule_pkts 5) - r5)), cache hits +$(($(total cache_hits) - ch)) for $pings pings and $n denied datagrams"
}

iperf_bg() { # iperf_bg SECONDS JSON: a paced iperf3 in the background (IPERF_PID)
	in_client timeout $(($1 + 15)) iperf3 -c "$SRV4" -p 5201 -t "$1" -b 300M -i 1 \
		--connect-timeout 3000 -J >"$2" 2>&1 &
	IPERF_PID=$!
}
iperf_check() { # iperf_check JSON: completed, no empty second
	local rc=0 zero
	wait "$IPERF_PID" || rc=$?
	((rc == 0)) || {
		fail "iperf3 exit $rc: $(jq -r '.error // empty' "$1" 2>/dev/null | head -c 80)"
		return
	}
	zero=$(jq '[.intervals[].sum.bytes | select(. == 0)] | length' "$1")
	((zero == 0)) || fail "iperf3 had $zero empty seconds"
	IPERF_DET=$(jq -r '[.intervals[].sum.bits_per_second] | min / 1e6 | floor | "slowest second \(.) Mbit/s"' "$1")
}

case_apply() {
	local g0 out before after keep0
	g0=$(generation)
	before=0
	in_client curl -sS -o /dev/null --max-time 3 "http://$SRV4:8080/" 2>/dev/null || before=$?
	((before == 7)) || fail "port 8080 before apply: curl exit $before, expected 7 (refused)"
	keep0=$(lines "$TMP/tcp.log")
	iperf_bg 4 "$TMP/apply-iperf.json"
	wait_for 5 grep -q '"bits_per_second"' "$TMP/apply-iperf.json" || true
	sleep 1
	out=$(ctl apply "$TMP/gw-open8080.yaml" 2>&1) || fail "apply failed: $out"
	grep -q "^applied: generation $((g0 + 1)) (was $g0)" <<<"$out" || fail "apply said: $out"
	(($(generation) == g0 + 1)) || fail "generation $(generation), expected $((g0 + 1))"
	after=0
	in_client curl -sS -o /dev/null --max-time 3 "http://$SRV4:8080/" 2>/dev/null || after=$?
	((after == 0)) || fail "port 8080 after apply: curl exit $after"
	iperf_check "$TMP/apply-iperf.json"
	grows "$TMP/tcp.log" "$keep0" || fail "the long-lived TCP flow stalled"
	echo "$out" >"$TMP/apply.txt"
	DET="generation $g0 -> $(generation); 8080 refused before, served after; iperf3 ${IPERF_DET:-?}"
}

case_apply_bad() {
	local g0 out rc=0 newconn=0
	g0=$(generation)
	iperf_bg 3 "$TMP/bad-iperf.json"
	sleep 1
	out=$(ctl apply "$TMP/bad.yaml" 2>&1) || rc=$?
	((rc == 1)) || fail "apply of a bad ruleset exited $rc, expected 1"
	grep -Eq "bad\.yaml:[0-9]+:[0-9]+: error: " <<<"$out" || fail "no file:line:col in: $out"
	grep -q 'running ruleset is unchanged' <<<"$out" || fail "apply did not say the ruleset is kept: $out"
	(($(generation) == g0)) || fail "generation moved to $(generation)"
	[[ $(jctl show | jq -r .data.file) == "$TMP/gw-open8080.yaml" ]] || fail "show names another file"
	in_client curl -sS -o /dev/null --max-time 3 "http://$SRV4:8080/" 2>/dev/null || newconn=$?
	((newconn == 0)) || fail "the running ruleset changed (8080: curl exit $newconn)"
	iperf_check "$TMP/bad-iperf.json"
	echo "$out" >"$TMP/apply-bad.txt"
	DET="$(grep -m1 -Eo 'bad\.yaml:[0-9]+:[0-9]+: error' <<<"$out"); generation kept at $g0; iperf3 ${IPERF_DET:-?}"
}

case_apply_watch() {
	local g0 wpid got
	g0=$(generation)
	base_rules accept drop >"$TMP/watch.yaml"
	# Not through ctl: $! must be statewallctl itself, for the kill below.
	"$CTL" --socket "$SOCK" apply --watch "$TMP/watch.yaml" >"$TMP/watch.out" 2>"$TMP/watch.err" &
	wpid=$!
	BG+=("$wpid")
	# Each outcome is one stamped line: [seconds.millis]: applied: ...
	wait_for 5 grep -Eq "^\[[0-9.]+\]: applied: generation $((g0 + 1)) " "$TMP/watch.out" ||
		fail "the watcher did not apply the file (generation $((g0 + 1)))"
	got=$(in_client "$PY" "$SWLAB" netpeer udp-burst "$SRV4" 9999 40010 5 1)
	((got == 0)) || fail "udp 9999 answered $got/5 before the edit"
	# A broken save is refused with its position, and the watcher keeps watching.
	cp "$TMP/bad.yaml" "$TMP/watch.yaml.new"
	mv -f "$TMP/watch.yaml.new" "$TMP/watch.yaml"
	wait_for 5 grep -Eq '^\[[0-9.]+\]: .*watch\.yaml:[0-9]+:[0-9]+: error: ' "$TMP/watch.err" ||
		fail "the broken edit was not reported with file:line:col"
	(($(generation) == g0 + 1)) || fail "the broken edit changed the generation"
	# The edit: 9999 accepted. A new inode (the way editors save) and a new mtime.
	base_rules accept accept >"$TMP/watch.yaml.new"
	mv -f "$TMP/watch.yaml.new" "$TMP/watch.yaml"
	wait_for 5 grep -Eq "^\[[0-9.]+\]: applied: generation $((g0 + 2)) \(was $((g0 + 1))\)" "$TMP/watch.out" ||
		fail "the edit was not applied: $(tail -c 200 "$TMP/watch.out" "$TMP/watch.err" | tr '\n' ' ')"
	got=$(in_client "$PY" "$SWLAB" netpeer udp-burst "$SRV4" 9999 40010 5 1)
	((got == 5)) || fail "udp 9999 answered $got/5 after the edit"
	kill "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	cat "$TMP/watch.out" "$TMP/watch.err" >"$TMP/watch.txt"
	DET="generations $((g0 + 1)), $((g0 + 2)) logged, a broken save refused; udp 9999 0/5 before the edit, $got/5 after"
}

case_conntrack_list() {
	local t u ktcp kudp
	wait_for 8 has_flag 40002 ASSURED || fail "the UDP flow did not become ASSURED"
	sw_list || fail "conntrack list failed: $(cat "$TMP/list.err")"
	cp "$TMP/list.txt" "$TMP/conntrack-list.txt"
	if ! "$PY" "$SWLAB" nfct "$TMP/list.txt" >"$TMP/list.json" 2>"$TMP/nfct.err"; then
		fail "swlab nfct cannot parse statewallctl's listing: $(head -c 200 "$TMP/nfct.err")"
		return
	fi
	t=$(flow_of "$TMP/list.txt" 40001)
	u=$(flow_of "$TMP/list.txt" 40002)
	[[ $(jq -c '[.state, .orig, .reply]' <<<"$t") == '["ESTABLISHED",{"dport":7001,"dst":"10.10.0.3","sport":40001,"src":"10.10.0.2"},{"dport":40001,"dst":"10.10.0.2","sport":7001,"src":"10.10.0.3"}]' ]] ||
		fail "TCP flow: ${t:-absent}"
	[[ $(jq -c '[.proto, .orig, .reply]' <<<"$u") == '["udp",{"dport":7002,"dst":"10.10.0.3","sport":40002,"src":"10.10.0.2"},{"dport":40002,"dst":"10.10.0.2","sport":7002,"src":"10.10.0.3"}]' ]] ||
		fail "UDP flow: ${u:-absent}"
	ktcp=$(cat "$TMP/kernel-tcp.json" 2>/dev/null)
	kudp=$(cat "$TMP/kernel-udp.json" 2>/dev/null)
	[[ $t == "$ktcp" ]] || fail "TCP differs from the kernel's: statewall $t, kernel $ktcp"
	[[ $u == "$kudp" ]] || fail "UDP differs from the kernel's: statewall $u, kernel $kudp"
	# The long-lived TCP flow sends a line now and then: while one is unacknowledged its
	# timeout is tcp_timeout_unacknowledged (300 s), as the kernel's; between lines, the
	# established one. Listed until it is between lines (a loaded machine may catch a line
	# in flight).
	wait_for 5 tcp_established_timeout || fail "TCP timeout is not the established one"
	jq -se 'any(.[]; .proto == "udp" and .orig.sport == 40002 and .timeout > 100 and .timeout <= 120)' "$TMP/list.json" >/dev/null ||
		fail "UDP timeout is not udp_timeout_stream"
	DET="$(wc -l <"$TMP/list.json") entries parsed by swlab nfct; tcp and udp flows equal the kernel's"
}

case_conntrack_filters() {
	local out
	out=$(ctl conntrack list -p udp) || fail "list -p udp failed"
	[[ -n $out ]] && ! grep -vq '^ipv4 *2 udp ' <<<"$out" || fail "list -p udp: $out"
	grep -q 'sport=40002 dport=7002' <<<"$out" || fail "list -p udp lacks the UDP flow"
	out=$(ctl conntrack list --dport 7001) || fail "list --dport failed"
	(($(grep -c . <<<"$out") == 1)) && grep -q 'sport=40001 dport=7001' <<<"$out" ||
		fail "list --dport 7001: $out"
	out=$(ctl conntrack list --state established) || fail "list --state failed"
	[[ -n $out ]] && ! grep -vq ' ESTABLISHED ' <<<"$out" || fail "list --state established: $out"
	out=$(ctl conntrack list -s "$SRV4") || fail "list -s failed"
	[[ -z $out ]] || fail "list -s $SRV4 (no flow starts at the server): $out"
	out=$(ctl conntrack list -f ipv6) || fail "list -f ipv6 failed"
	[[ -z $out ]] || fail "list -f ipv6: $out"
	out=$(ctl conntrack list -s "$CLI4" -p icmp) || fail "list -s -p icmp failed"
	[[ -n $out ]] && ! grep -vq "^ipv4 *2 icmp .*src=$CLI4 dst=$SRV4 type=8 " <<<"$out" ||
		fail "list -s $CLI4 -p icmp: $out"
	DET="-p, --dport, --state, -s, -f select as asked; empty selections print nothing"
}

case_conntrack_flush_tcp() {
	local out pol n0 n1 ulines
	pol=$(total dropped.policy)
	ulines=$(lines "$TMP/udp.log")
	out=$(ctl conntrack flush -p tcp --dport 7001) || fail "flush failed: $out"
	[[ $out == "1 flow entries have been deleted." ]] || fail "flush said: $out"
	# Mid-stream segments now find no entry: NEW without SYN, refused by the policy.
	wait_for 5 at_least $((pol + 5)) total dropped.policy || fail "no policy drops after the flush"
	n0=$(lines "$TMP/tcp.log")
	if wait_for 2 grows "$TMP/tcp.log" "$n0"; then fail "the flushed TCP connection still passes traffic"; fi
	n1=$(lines "$TMP/tcp.log")
	if out=$(ct_get_tcp 40001 2>/dev/null); then fail "the flushed entry came back: $out"; fi
	grows "$TMP/udp.log" "$ulines" || fail "the UDP flow stalled (not flushed)"
	sw_flow 40002 | grep -q . || fail "the UDP entry was flushed too"
	DET="1 deleted; tcp echoes stopped at $n1, policy drops +$(($(total dropped.policy) - pol)); udp untouched"
	# The stalled client is replaced by a fresh connection for the cases that follow.
	renew_tcp_flow 40011 "$TMP/tcp2.log"
}

case_conntrack_flush_udp() {
	local out new ul
	new=$(total ctstate.new)
	out=$(ctl conntrack flush -p udp --dport 7002) || fail "flush failed: $out"
	[[ $out == "1 flow entries have been deleted." ]] || fail "flush said: $out"
	ul=$(lines "$TMP/udp.log")
	wait_for 5 at_least $((new + 1)) total ctstate.new || fail "no NEW packet after the flush"
	wait_for 5 sw_flow 40002 || fail "the UDP flow did not re-open"
	out=$(sw_flow 40002)
	[[ -n $out ]] || fail "no UDP entry after the flush"
	wait_for 5 grows "$TMP/udp.log" "$ul" || fail "the UDP flow stopped"
	DET="1 deleted; re-opened as NEW (ctstate new +$(($(total ctstate.new) - new))), flow goes on"
}

case_conntrack_flush_all() {
	local out n t2
	out=$(ctl conntrack flush) || fail "flush failed: $out"
	n=$(grep -Eo '^[0-9]+' <<<"$out")
	[[ $out =~ ^[0-9]+\ flow\ entries\ have\ been\ deleted\.$ ]] && ((n >= 2)) ||
		fail "flush said: $out"
	wait_for 5 sw_flow 40002 || fail "the UDP flow did not come back"
	# The TCP connection (mid-stream, no SYN) is refused like the flushed one.
	t2=$(lines "$TMP/tcp2.log")
	sleep 0.5
	if ct_get_tcp 40011 >/dev/null 2>&1; then fail "the TCP entry came back without a SYN"; fi
	DET="$n deleted; UDP back; TCP (no SYN) stays out ($t2 echoes)"
	renew_tcp_flow 40012 "$TMP/tcp3.log"
}

udp_gone() { ! sw_flow 40013 | grep -q .; }
case_set_get() {
	local out rc g0 t0 t1 el got
	[[ $(ctl get udp_timeout) == "udp_timeout = 30" ]] || fail "get udp_timeout: $(ctl get udp_timeout 2>&1)"
	g0=$(generation)
	out=$(ctl set udp_timeout 2) || fail "set failed: $out"
	[[ $out == "udp_timeout = 2 (generation $((g0 + 1)))" ]] || fail "set said: $out"
	[[ $(ctl get udp_timeout) == "udp_timeout = 2" ]] || fail "get after set: $(ctl get udp_timeout 2>&1)"
	got=$(in_client "$PY" "$SWLAB" netpeer udp-burst "$SRV4" 7002 40013 1 1)
	((got == 1)) || fail "the one-datagram UDP flow got no answer"
	t0=$(date +%s.%N)
	sw_flow 40013 | grep -q . || fail "the one-datagram UDP flow is not listed"
	wait_for 10 udp_gone || fail "the UDP flow did not expire within 10 s"
	t1=$(date +%s.%N)
	el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	awk -v e="$el" 'BEGIN { exit !(e >= 0.5 && e <= 4.5) }' || fail "expired after ${el}s, expected ~2"
	rc=0
	out=$(ctl set udp_timeout 0 2>&1) || rc=$?
	((rc == 1)) && grep -q 'allowed 1 to ' <<<"$out" || fail "set udp_timeout 0: exit $rc: $out"
	rc=0
	out=$(ctl set udp_timeout lots 2>&1) || rc=$?
	((rc == 1)) || fail "set udp_timeout lots: exit $rc: $out"
	rc=0
	out=$(ctl get udp_timout 2>&1) || rc=$?
	((rc == 1)) && grep -q 'udp_timeout' <<<"$out" || fail "get of a misspelt key: exit $rc: $out"
	(($(generation) == g0 + 1)) || fail "a refused set changed the generation"
	ctl set udp_timeout 30 >/dev/null || fail "cannot restore udp_timeout"
	ctl set udp_timeout 0 >"$TMP/set-bad.txt" 2>&1
	DET="set 2: a UDP flow expired after ${el}s; 0 refused ($(grep -Eo 'allowed 1 to [0-9]+' <<<"$(cat "$TMP/set-bad.txt")"))"
}

case_hist() {
	local j c0 c1
	j=$(jctl hist --per-core) || fail "hist --json failed"
	jq -e '.data.total.forwarded | .count > 0 and .min <= .p50 and .p50 <= .p99 and .p99 <= .max' <<<"$j" >/dev/null ||
		fail "forwarded: $(jq -c '.data.total.forwarded | del(.buckets)' <<<"$j")"
	jq -e '.data.total.dropped | .count > 0 and .p50 <= .p99 and .p99 <= .max' <<<"$j" >/dev/null ||
		fail "dropped: $(jq -c '.data.total.dropped | del(.buckets)' <<<"$j")"
	jq -e '.data.total.batch | .count > 0 and .p50 <= .p99 and .p99 <= .max' <<<"$j" >/dev/null ||
		fail "batch: $(jq -c '.data.total.batch | del(.buckets)' <<<"$j")"
	(($(jq '.data.per_core | length' <<<"$j") == WORKERS)) || fail "per_core rows: $(jq '.data.per_core | length' <<<"$j")"
	jq -e '([.data.per_core[].forwarded.count] | add) == .data.total.forwarded.count' <<<"$j" >/dev/null ||
		fail "per-core counts do not sum to the total"
	jq -e '([.data.total.forwarded.buckets[][1]] | add) == .data.total.forwarded.count' <<<"$j" >/dev/null ||
		fail "the buckets do not sum to the count"
	ctl hist --per-core >"$TMP/hist.txt" || fail "hist failed"
	grep -q '^forwarded ' "$TMP/hist.txt" && grep -q '^forwarded\[1\] ' "$TMP/hist.txt" ||
		fail "hist --per-core rows missing"
	c0=$(jq '.data.total.forwarded.count' <<<"$j")
	jq -e '.data.reset == true' <<<"$(jctl hist --reset)" >/dev/null || fail "hist --reset did not say reset"
	c1=$(jctl hist | jq '.data.total.forwarded.count')
	((c1 < c0)) || fail "after --reset the count is $c1 (was $c0)"
	in_client ping -c 5 -i 0.1 -W 2 "$SRV4" >/dev/null 2>&1 || fail "ping failed"
	wait_for 5 at_least $((c1 + 10)) eval "jctl hist | jq .data.total.forwarded.count" ||
		fail "10 pinged packets not recorded"
	DET="forwarded $c0 ($(jq -r '.data.total.forwarded | "p50 \(.p50) p99 \(.p99) max \(.max) ns"' <<<"$j")); after reset $c1"
}

top_ready() { # the pane shows a frame with per-core rows and traffic in the total row
	tmux -L "$TMUX_SOCK" capture-pane -p -t top >"$TMP/top.pane" 2>/dev/null &&
		grep -q '^statewall top: generation' "$TMP/top.pane" &&
		grep -Eq '^0 +[0-9]' "$TMP/top.pane" && grep -Eq '^1 +[0-9]' "$TMP/top.pane" &&
		awk '$1 == "total" && $2 > 0 { ok = 1 } END { exit !ok }' "$TMP/top.pane"
}
top_done() {
	tmux -L "$TMUX_SOCK" capture-pane -p -t top >"$TMP/top.after" 2>/dev/null &&
		grep -q 'top-exit=' "$TMP/top.after"
}
case_top() {
	local ex
	tmux -L "$TMUX_SOCK" -f /dev/null new-session -d -s top -x 120 -y 30 \
		"stty -g >'$TMP/stty.before'; '$CTL' --socket '$SOCK' top; echo top-exit=\$?; stty -g >'$TMP/stty.after'; exec sleep 60" ||
		{
			fail "tmux did not start"
			return
		}
	wait_for 10 top_ready || fail "no frame with per-core rows and traffic: $(head -c 300 "$TMP/top.pane" | tr '\n' '|')"
	cp "$TMP/top.pane" "$TMP/top.txt"
	tmux -L "$TMUX_SOCK" send-keys -t top q
	wait_for 5 top_done || fail "top did not quit on q"
	ex=$(grep -o 'top-exit=[0-9]*' "$TMP/top.after")
	[[ $ex == top-exit=0 ]] || fail "top: $ex"
	[[ -s $TMP/stty.before ]] && cmp -s "$TMP/stty.before" "$TMP/stty.after" ||
		fail "the terminal was not restored"
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null
	DET="frame with workers 0 and 1, q -> $ex, terminal restored"
}

scrape() { ip netns exec "$GW" curl -sS --max-time 3 "http://$METRICS/metrics"; }
metric_sum() { # metric_sum NAME FILE: the sum over workers
	awk -v n="statewall_$1{" 'index($0, n) == 1 { s += $2 } END { printf "%d", s }' "$2"
}
log_lines() { ctl log 2>/dev/null | grep -c 'swctl-9998: IN=lan OUT=wan .* DPT=9998 '; }
case_log() {
	local n=5 fpid
	# The base rules and a log rule after them (the positions other cases count on stay):
	# new datagrams to 9998 reach it, are logged, and the policy drops them.
	{
		base_rules "reject, reject_with: tcp-reset" drop
		echo '    - {in_port: lan, proto: udp, dport: 9998, action: log, log: {prefix: "swctl-9998: ", level: notice}}'
	} >"$TMP/gw-log.yaml"
	ctl apply "$TMP/gw-log.yaml" >/dev/null 2>&1 || fail "apply with a log rule refused"
	in_client "$PY" "$SWLAB" netpeer udp-burst "$SRV4" 9998 40098 "$n" >/dev/null || fail "udp-burst failed"
	wait_for 5 at_least "$n" log_lines || fail "statewallctl log shows $(log_lines) lines, expected $n"
	(($(log_lines) == n)) || fail "statewallctl log shows $(log_lines) lines for $n datagrams"
	ctl log -n 1 >"$TMP/log-1.txt" || fail "log -n 1 failed"
	(($(wc -l <"$TMP/log-1.txt") == 1)) && grep -Eq '^\[[0-9]+\.[0-9]{3}\] swctl-9998: IN=lan OUT=wan MAC=' "$TMP/log-1.txt" ||
		fail "log -n 1: $(head -c 200 "$TMP/log-1.txt")"
	jctl log | jq -e '.data.lines | length > 0 and all(.level == 5)' >/dev/null || fail "log --json: levels"
	# Not through ctl: $! must be statewallctl itself, for the kill below.
	"$CTL" --socket "$SOCK" log -f -n 0 >"$TMP/log-follow.txt" 2>&1 &
	fpid=$!
	sleep 0.5
	in_client "$PY" "$SWLAB" netpeer udp-burst "$SRV4" 9998 40099 1 >/dev/null || fail "udp-burst failed"
	wait_for 5 grep -q 'SPT=40099 DPT=9998' "$TMP/log-follow.txt" || fail "log -f did not show the new line"
	kill "$fpid" 2>/dev/null
	wait "$fpid" 2>/dev/null
	grep -q 'SPT=40098 ' "$TMP/log-follow.txt" && fail "log -f -n 0 printed old lines"
	(($(grep -c '^swctl-9998: IN=lan OUT=wan ' "$LOG") == n + 1)) ||
		fail "the daemon's stderr has $(grep -c '^swctl-9998: ' "$LOG") log lines, expected $((n + 1))"
	ctl apply "$TMP/gw.yaml" >/dev/null 2>&1 || fail "re-apply of gw.yaml refused"
	DET="$n datagrams, $n lines, then 1 more seen by -f; -n 1, --json and the daemon's stderr agree"
}

case_metrics() {
	local a b m e ent
	a=$(total rx_packets)
	scrape >"$TMP/metrics.txt" || {
		fail "cannot scrape http://$METRICS/metrics in $GW"
		return
	}
	b=$(total rx_packets)
	m=$(metric_sum rx_packets_total "$TMP/metrics.txt")
	((a <= m && m <= b)) || fail "rx_packets_total $m not between the stats before ($a) and after ($b)"
	grep -q '^# TYPE statewall_rx_packets_total counter' "$TMP/metrics.txt" || fail "no TYPE line"
	grep -q "^statewall_rx_packets_total{worker=\"1\"}" "$TMP/metrics.txt" || fail "no worker 1 row"
	e=$(metric_sum conntrack_max "$TMP/metrics.txt")
	((e == $(total capacity))) || fail "conntrack_max $e, stats capacity $(total capacity)"
	ent=$(metric_sum conntrack_entries "$TMP/metrics.txt")
	((ent >= 2)) || fail "conntrack_entries $ent"
	grep -Eq '^statewall_latency_ns_count\{kind="forwarded"\} [1-9]' "$TMP/metrics.txt" || fail "no latency count"
	DET="rx_packets_total $m within [$a, $b]; conntrack_max $e; entries $ent"
}

case_shutdown() {
	local rc=0
	kill -TERM "$DPID"
	wait_for 10 eval "! kill -0 $DPID" || fail "still running 10 s after SIGTERM"
	wait "$DPID" || rc=$?
	DPID=''
	((rc == 0)) || fail "exit status $rc"
	grep -q 'statewall: SIGTERM received; stopping' "$LOG" || fail "the log does not name SIGTERM"
	grep -q 'statewall: stopped' "$LOG" || fail "no 'stopped' in the log"
	[[ ! -e $SOCK ]] || fail "the socket is left behind"
	if ip -n "$GW" link show | grep -q xdp; then fail "XDP still attached"; fi
	DET="exit $rc; log: $(grep -m1 -o 'SIGTERM received; stopping' "$LOG")"
}

# ---------------------------------------------------------------- run

echo "test-control: kernel lab (the reference listing)"
lab_up "swk$$" --kernel
check kernel-nfct
lab_down "swk$$"
LABS=()

echo "test-control: statewall lab, $BIN run --workers $WORKERS"
lab_up "swc$$"
ip netns exec "$GW" "$BIN" run --config "$TMP/gw.yaml" --state none --control-socket "$SOCK" \
	--workers "$WORKERS" --no-pin --metrics "$METRICS" >"$LOG" 2>&1 &
DPID=$!
sw_up() { [[ -S $SOCK ]] && ctl stats >/dev/null 2>&1 && ip -n "$GW" link show lan | grep -q xdp; }
wait_for 20 sw_up || {
	tail -5 "$LOG" >&2
	die "statewall run did not come up"
}
keep_flow tcp 7001 40001 "$TMP/tcp.log"
TCP_PID=$KEEP_PID
BG+=("$TCP_PID")
keep_flow udp 7002 40002 "$TMP/udp.log"
BG+=("$KEEP_PID")
wait_for 5 grows "$TMP/tcp.log" 0 && wait_for 5 grows "$TMP/udp.log" 0 ||
	die "the long-lived TCP/UDP flows do not get through statewall"

for c in show-counters stats apply apply-bad apply-watch conntrack-list conntrack-filters \
	conntrack-flush-tcp conntrack-flush-udp conntrack-flush-all set-get hist top log metrics \
	shutdown; do
	check "$c"
done

finish 15
