#!/usr/bin/env bash
# Lab test of `statewallctl conntrack save` and `restore` against the real kernel and
# conntrack-tools (the format of `conntrack -L -o save`, which `conntrack -R` loads), both ways:
#
#   kernel-save         real kernel entries in a namespace of this test: TCP (established,
#                       and time_wait over IPv6), UDP, ICMP and ICMPv6 from real traffic
#                       between two namespaces, GRE and ESP added with `conntrack -I`; the
#                       kernel's `conntrack -L -o save` lists them all
#   restore             those lines restored into a running statewall: every one added;
#                       `statewallctl conntrack list` equals the kernel's /proc/net/nf_conntrack
#                       (timeouts and mark/use aside), and `conntrack save` gives the kernel's
#                       lines back (timeouts aside)
#   restore-again       the same lines again: all already present, none added
#   restore-nat         a NAT'd kernel entry (`conntrack -I --src-nat`): refused with
#                       file:line:col, nothing added
#   to-kernel           statewall's table (the restored entries and real traffic through
#                       statewall: ping, ping -6, an HTTP fetch, a long-lived TCP connection)
#                       saved and piped into `conntrack -R -` in a fresh namespace: the kernel's
#                       `conntrack -L -o save` there equals statewall's save, its
#                       /proc/net/nf_conntrack equals statewall's list
#
# The full cutover of live connections (a kernel firewall handing over to statewall and back)
# is another test's (issue 12); this one proves the format, both ways.
#
#   scripts/test-conntrack-save.sh [--keep]
#
# Each case prints PASS or FAIL; the last line is "N passed, N failed" (exit 1 on a failure).
# Needs root and conntrack (conntrack-tools). Uses
# ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall} and its statewallctl; --keep
# leaves the work directory (lines, listings, the daemon's log) in /tmp. Its namespaces are
# sw-save-PID-*.
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-conntrack-save
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
CTL=${STATEWALLCTL:-$(dirname "$BIN")/statewallctl}
[[ $BIN == /* ]] || BIN=$REPO/$BIN
[[ $CTL == /* ]] || CTL=$REPO/$CTL
START=$SECONDS
NS=sw-save-$$
KA=$NS-ka # kernel traffic: the client ...
KB=$NS-kb # ... and the host whose conntrack table is saved
KN=$NS-kn # the NAT'd entry
KR=$NS-kr # the fresh kernel that loads statewall's save
CLI4=10.10.0.2
SRV4=10.10.0.3
SRV6=fd00:10::3

keep_or_help "$@"
need_root "network namespaces, XDP, conntrack"
need_cmds ip conntrack iptables-legacy ip6tables-legacy curl ping jq "$PY"
need_bins "$BIN" "$CTL"

TMP=$(mktemp -d /tmp/sw-save.XXXXXX)
chmod 755 "$TMP"
SOCK=$TMP/run/control.sock
LOG=$TMP/statewall.log
LAB=$NS
DPID=''

# ns_down and lab_down stop every process in this test's namespaces: all were started here.
cleanup() {
	trap - EXIT INT TERM
	stop_pid "$DPID"
	ns_down "$KA" "$KB" "$KN" "$KR"
	lab_down "$LAB"
	if ((keep)); then echo "$PROG: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

in_kb() { ip netns exec "$KB" "$@"; }
k_host() { # k_host NS V4 V6
	ip -n "$1" addr add "$2/24" dev eth0
	ip -n "$1" addr add "$3/64" dev eth0 nodad
	ip -n "$1" link set eth0 up
	ip -n "$1" link set lo up
}

# Save lines without their timeout (`-t N` ticks between two readings), sorted.
untimed() { awk '{ $3 = ""; print }' "$@" | sort; }
# /proc/net/nf_conntrack lines without the timeout and what follows the reply tuple (mark,
# zone, use), sorted. Statewall's listing leaves out what the kernel's GRE tracker adds to a
# GRE line (its PPTP timeouts, `timeout=0, stream_timeout=0`, and the keys, `srckey=0x0
# dstkey=0x0`): taken out of both (only key 0 is restored).
procnorm() {
	awk '{
		$5 = ""; sub(/ mark=.*/, "")
		sub(/ timeout=[0-9]+, stream_timeout=[0-9]+/, ""); gsub(/ (src|dst)key=0x[0-9a-f]+/, "")
		gsub(/ +/, " "); print
	}' "$@" | sort
}
# The first line where two files differ, for a failure's reason.
first_diff() { diff "$1" "$2" | grep -m2 '^[<>]' | tr '\n' ' ' | head -c 300; }

# ---------------------------------------------------------------- cases

case_kernel_save() {
	local p
	ip netns add "$KA" && ip netns add "$KB" || {
		fail "cannot create $KA/$KB"
		return
	}
	ip link add eth0 netns "$KA" type veth peer name eth0 netns "$KB"
	k_host "$KA" 10.77.0.1 fd77::1
	k_host "$KB" 10.77.0.2 fd77::2
	# Conntrack runs in a namespace once a rule there uses it.
	in_kb iptables-legacy -A INPUT -m conntrack --ctstate INVALID -j DROP
	in_kb ip6tables-legacy -A INPUT -m conntrack --ctstate INVALID -j DROP
	in_kb "$PY" "$SWLAB" netpeer serve-tcp 7001 >/dev/null 2>&1 &
	in_kb "$PY" "$SWLAB" netpeer serve-udp 7002 >/dev/null 2>&1 &
	in_kb "$PY" -m http.server 8000 --bind :: --directory "$TMP/pub" >/dev/null 2>&1 &
	for p in tcp:7001 udp:7002 tcp:8000; do
		wait_for 10 ns_listening "$KB" "${p%:*}" "${p#*:}" || fail "nothing listens on $KB's $p"
	done
	ip netns exec "$KA" "$PY" "$SWLAB" netpeer tcp-keep 10.77.0.2 7001 40001 "$TMP/k-tcp.log" 2>/dev/null &
	ip netns exec "$KA" "$PY" "$SWLAB" netpeer udp-keep 10.77.0.2 7002 40002 "$TMP/k-udp.log" 2>/dev/null &
	ip netns exec "$KA" ping -c 2 -i 0.2 -W 2 10.77.0.2 >/dev/null 2>&1 || fail "ping 10.77.0.2 failed"
	ip netns exec "$KA" ping -6 -c 2 -i 0.2 -W 2 fd77::2 >/dev/null 2>&1 || fail "ping -6 fd77::2 failed"
	ip netns exec "$KA" curl -sSf -o /dev/null --max-time 5 --local-port 40003 "http://[fd77::2]:8000/" ||
		fail "curl over IPv6 failed"
	wait_for 5 grows "$TMP/k-tcp.log" 0 && wait_for 5 grows "$TMP/k-udp.log" 0 ||
		fail "the long-lived TCP/UDP flows do not run"
	# Protocols no traffic here carries: GRE (key 0, as outside PPTP) and ESP (generic).
	in_kb conntrack -I -s 10.77.0.1 -d 10.77.0.2 -p gre --srckey 0 --dstkey 0 -t 600 \
		-u SEEN_REPLY,ASSURED >/dev/null 2>&1 || fail "conntrack -I (gre) failed"
	in_kb conntrack -I -s 10.77.0.1 -d 10.77.0.2 -p 50 -t 600 -u SEEN_REPLY >/dev/null 2>&1 ||
		fail "conntrack -I (esp) failed"
	# The UDP flow is a stream (ASSURED) once it is 2 s old and replied.
	sleep 2.5
	in_kb conntrack -L -o save >"$TMP/kernel.save" 2>"$TMP/kernel.save.err" || fail "conntrack -L -o save failed"
	in_kb cat /proc/net/nf_conntrack >"$TMP/kernel.proc" || fail "no /proc/net/nf_conntrack in $KB"
	for p in \
		'-u SEEN_REPLY,ASSURED -s 10.77.0.1 -d 10.77.0.2 -r 10.77.0.2 -q 10.77.0.1 -p tcp --sport 40001 --dport 7001 --reply-port-src 7001 --reply-port-dst 40001 --state ESTABLISHED' \
		'-u SEEN_REPLY,ASSURED -s 10.77.0.1 -d 10.77.0.2 -r 10.77.0.2 -q 10.77.0.1 -p udp --sport 40002 --dport 7002' \
		'-s fd77::1 -d fd77::2 -r fd77::2 -q fd77::1 -p tcp --sport 40003 --dport 8000 --reply-port-src 8000 --reply-port-dst 40003 --state TIME_WAIT' \
		'-s 10.77.0.1 -d 10.77.0.2 -r 10.77.0.2 -q 10.77.0.1 -p icmp --icmp-type 8 --icmp-code 0 --icmp-id ' \
		'-s fd77::1 -d fd77::2 -r fd77::2 -q fd77::1 -p icmpv6 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id ' \
		'-p gre --srckey 0 --dstkey 0 --reply-key-src 0 --reply-key-dst 0' \
		'-u SEEN_REPLY -s 10.77.0.1 -d 10.77.0.2 -r 10.77.0.2 -q 10.77.0.1 -p 50'; do
		grep -qF -- "$p" "$TMP/kernel.save" || fail "no kernel line with: $p"
	done
	DET="$(wc -l <"$TMP/kernel.save") kernel lines: $(awk '{ for (i = 1; i < NF; i++) if ($i == "-p") print $(i + 1) }' "$TMP/kernel.save" | sort | uniq -c | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')"
}

case_restore() {
	local n out
	n=$(wc -l <"$TMP/kernel.save")
	out=$(ctl conntrack restore "$TMP/kernel.save" 2>&1) || fail "restore failed: $out"
	[[ $out == "restored: $n added, 0 already present, 0 expired" ]] || fail "restore said: $out"
	ctl conntrack list >"$TMP/sw.list" 2>"$TMP/sw.list.err" || fail "conntrack list failed"
	procnorm "$TMP/kernel.proc" >"$TMP/kernel.proc.norm"
	procnorm "$TMP/sw.list" >"$TMP/sw.list.norm"
	cmp -s "$TMP/kernel.proc.norm" "$TMP/sw.list.norm" ||
		fail "statewall's list differs from the kernel's /proc/net/nf_conntrack: $(first_diff "$TMP/kernel.proc.norm" "$TMP/sw.list.norm")"
	ctl conntrack save >"$TMP/sw.save" 2>"$TMP/sw.save.err" || fail "conntrack save failed"
	untimed "$TMP/kernel.save" >"$TMP/kernel.save.untimed"
	untimed "$TMP/sw.save" >"$TMP/sw.save.untimed"
	cmp -s "$TMP/kernel.save.untimed" "$TMP/sw.save.untimed" ||
		fail "statewall's save differs from the kernel's: $(first_diff "$TMP/kernel.save.untimed" "$TMP/sw.save.untimed")"
	DET="$n added; list = kernel's /proc ($(wc -l <"$TMP/sw.list.norm") entries), save = kernel's lines"
}

case_restore_again() {
	local n out
	n=$(wc -l <"$TMP/kernel.save")
	out=$(ctl conntrack restore <"$TMP/kernel.save" 2>&1) || fail "restore failed: $out"
	[[ $out == "restored: 0 added, $n already present, 0 expired" ]] || fail "restore said: $out"
	DET="$out"
}

case_restore_nat() {
	local before out rc=0
	ip netns add "$KN" || {
		fail "cannot create $KN"
		return
	}
	ip netns exec "$KN" conntrack -I -s 10.78.0.1 -d 10.78.0.2 -p tcp --sport 40010 --dport 80 \
		--state ESTABLISHED -u SEEN_REPLY,ASSURED --src-nat 192.0.2.1 -t 600 >/dev/null 2>&1 ||
		fail "conntrack -I --src-nat failed"
	ip netns exec "$KN" conntrack -L -o save >"$TMP/nat.save" 2>/dev/null
	before=$(ctl conntrack count)
	out=$(ctl conntrack restore "$TMP/nat.save" 2>&1) || rc=$?
	((rc == 1)) || fail "restore of a NAT'd entry: exit $rc, expected 1"
	grep -Eq "^$TMP/nat.save:1:[0-9]+: \`-n\`: the entry is source-NAT'd.*; Statewall does no NAT" <<<"$out" ||
		fail "no file:line:col error: $out"
	grep -q 'nothing was restored' <<<"$out" || fail "no 'nothing was restored': $out"
	[[ $(ctl conntrack count) == "$before" ]] || fail "the table changed: $before -> $(ctl conntrack count)"
	DET="$(head -c 120 <<<"$out" | head -1)..."
}

case_to_kernel() {
	local n
	# Real traffic through statewall: its own entries beside the restored ones.
	in_server "$PY" "$SWLAB" netpeer serve-tcp 7001 >/dev/null 2>&1 &
	in_server "$PY" -m http.server 80 --bind :: --directory "$TMP/pub" >/dev/null 2>&1 &
	wait_for 10 ns_listening "$SERVER" tcp 7001 && wait_for 10 ns_listening "$SERVER" tcp 80 ||
		fail "nothing listens on the server"
	in_client "$PY" "$SWLAB" netpeer tcp-keep "$SRV4" 7001 40021 "$TMP/sw-tcp.log" 2>/dev/null &
	in_client ping -c 2 -i 0.2 -W 2 "$SRV4" >/dev/null 2>&1 || fail "ping through statewall failed"
	in_client ping -6 -c 2 -i 0.2 -W 2 "$SRV6" >/dev/null 2>&1 || fail "ping -6 through statewall failed"
	in_client curl -sSf -o /dev/null --max-time 5 --local-port 40022 "http://$SRV4/" ||
		fail "curl through statewall failed"
	wait_for 5 grows "$TMP/sw-tcp.log" 0 || fail "the TCP flow through statewall does not run"
	ip netns add "$KR" || {
		fail "cannot create $KR"
		return
	}
	# As an operator would: a pipe into conntrack -R (a copy kept to compare).
	ctl conntrack save 2>"$TMP/to-kernel.err" | tee "$TMP/to-kernel.save" |
		ip netns exec "$KR" conntrack -R - >"$TMP/restore-r.out" 2>&1
	local rc=("${PIPESTATUS[@]}")
	[[ ${rc[*]} == "0 0 0" ]] ||
		fail "statewallctl conntrack save | conntrack -R -: exit ${rc[*]}: $(head -c 200 "$TMP/restore-r.out" "$TMP/to-kernel.err")"
	n=$(wc -l <"$TMP/to-kernel.save")
	grep -q -- "-s $CLI4 -d $SRV4 -r $SRV4 -q $CLI4 -p tcp --sport 40021 --dport 7001 --reply-port-src 7001 --reply-port-dst 40021 --state ESTABLISHED" "$TMP/to-kernel.save" ||
		fail "statewall's save has no line for the live TCP connection"
	ip netns exec "$KR" conntrack -L -o save >"$TMP/back.save" 2>/dev/null
	ip netns exec "$KR" cat /proc/net/nf_conntrack >"$TMP/back.proc"
	ctl conntrack list >"$TMP/sw2.list" 2>/dev/null
	untimed "$TMP/to-kernel.save" >"$TMP/to-kernel.untimed"
	untimed "$TMP/back.save" >"$TMP/back.untimed"
	cmp -s "$TMP/to-kernel.untimed" "$TMP/back.untimed" ||
		fail "the kernel's lines differ from statewall's save: $(first_diff "$TMP/to-kernel.untimed" "$TMP/back.untimed")"
	procnorm "$TMP/back.proc" >"$TMP/back.proc.norm"
	procnorm "$TMP/sw2.list" >"$TMP/sw2.list.norm"
	cmp -s "$TMP/back.proc.norm" "$TMP/sw2.list.norm" ||
		fail "the kernel's /proc/net/nf_conntrack differs from statewall's list: $(first_diff "$TMP/sw2.list.norm" "$TMP/back.proc.norm")"
	DET="$n lines loaded by conntrack -R; the kernel lists the same tuples, states and flags"
}

# ---------------------------------------------------------------- run

mkdir -p "$TMP/pub"
printf 'statewall save suite\n' >"$TMP/pub/index.html"
chmod -R a+rX "$TMP/pub"
cat >"$TMP/gw.yaml" <<'EOF'
forward:
  policy: drop
  rules:
    - {ctstate: invalid, action: drop}
    - {ctstate: [established, related], action: accept}
    - {ctstate: untracked, action: accept, comment: IPv6 neighbour discovery}
    - {in_port: lan, proto: tcp, dport: [80, 7001], syn: true, ctstate: new, action: accept}
    - {in_port: lan, proto: icmp, icmp_type: echo-request, ctstate: new, action: accept}
    - {in_port: lan, proto: icmpv6, icmpv6_type: echo-request, ctstate: new, action: accept}
EOF
"$BIN" check "$TMP/gw.yaml" >"$TMP/gw.check" 2>&1 || {
	cat "$TMP/gw.check" >&2
	die "statewall check gw.yaml failed"
}

echo "$PROG: statewall lab $LAB, $BIN run --workers 2; kernel namespaces $NS-k*"
LAB=$LAB LAB_QUEUES=2 scripts/lab.sh up >"$TMP/lab.log" 2>&1 ||
	die "scripts/lab.sh up failed: $(tail -1 "$TMP/lab.log")"
CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server
ip netns exec "$GW" "$BIN" run --config "$TMP/gw.yaml" --state none --control-socket "$SOCK" \
	--workers 2 --no-pin >"$LOG" 2>&1 &
DPID=$!
sw_up() { [[ -S $SOCK ]] && ctl stats >/dev/null 2>&1 && ip -n "$GW" link show lan | grep -q xdp; }
wait_for 20 sw_up || {
	tail -5 "$LOG" >&2
	die "statewall run did not come up"
}
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
grows() { (($(lines "$1") > $2)); }

for c in kernel-save restore restore-again restore-nat to-kernel; do
	check "$c"
done

finish 15
