#!/usr/bin/env bash
# Lab test of Statewall's sync messages (engine::sync::wire) against a real conntrackd 1.4.7,
# both ways, over a UDP sync link between two namespaces of this test:
#
#   to-conntrackd     the messages Statewall writes (`sync_datagrams encode`: CT_NEW of an
#                     established TCP connection with a mark, a UDP flow, an ICMP echo, an
#                     IPv6 TCP connection opening; CT_UPD of the UDP flow; CT_DEL of the echo)
#                     sent to conntrackd (NOTRACK mode): its external cache holds the three
#                     left with their states and mark, its counters say 4 created, 1 updated,
#                     1 destroyed, 0 malformed; after `conntrackd -c` its kernel's table lists
#                     them with their tuples, states, status and timeouts
#   expect-to-conntrackd
#                     an FTP control connection (CT_NEW, helper ftp) and its expectation
#                     (EXP_NEW, `sync_datagrams encode-ftp`) sent to a conntrackd with
#                     `ExpectationSync On`: its external expectation cache has it, 0
#                     malformed; after `conntrackd -c` and `-c expect` its kernel's
#                     `conntrack -L expect` has it, tuple, mask and master as the kernel's
#                     FTP helper makes them
#   from-conntrackd   a conntrackd (NOTRACK) sends what `conntrack -I/-U/-D` do in its
#                     namespace; the datagrams captured on the link, read by Statewall
#                     (`sync_datagrams decode`): every message read, none malformed, each with
#                     the tuple, state, status, timeout, mark and ICMP query made
#
# The recorded datagrams of dataplane/engine/tests/data/sync/ are the second case's, once:
# this re-derives them from the conntrackd installed.
#
#   scripts/test-sync-conntrackd.sh [--keep]
#
# Each case prints PASS or FAIL; the last line is "N passed, N failed" (exit 1 on a failure).
# Needs root, conntrackd and conntrack (conntrack-tools), tcpdump; builds the example
# sync_datagrams. Its namespaces are sw-sync-PID-a and -b; --keep leaves the work directory.
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-sync-conntrackd
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh
# shellcheck source=scripts/lib/conntrackd.sh
. scripts/lib/conntrackd.sh

START=$SECONDS
NS=sw-sync-$$
A=$NS-a # 10.99.0.1
B=$NS-b # 10.99.0.2

keep_or_help "$@"
need_root "network namespaces, conntrackd"
need_cmds ip conntrack conntrackd tcpdump cargo "$PY"

TMP=$(mktemp -d /tmp/sw-sync.XXXXXX)
LOG=$TMP/conntrackd.log
DPID=''
TDPID=''
daemon_free() { true; }

cleanup() {
	trap - EXIT INT TERM
	stop_pid "$TDPID"
	# conntrackd daemonizes: stop each by its control socket, then the namespaces' processes.
	for n in a b; do
		[[ -S $TMP/$n.ctl ]] && ip netns exec "$NS-$n" conntrackd -C "$TMP/$n.conf" -k >/dev/null 2>&1
	done
	ns_down "$A" "$B"
	if ((keep)); then echo "$PROG: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

for n in "$A" "$B"; do
	ip netns add "$n" && ip -n "$n" link set lo up || die "cannot create namespace $n"
done
ip -n "$A" link add sync0 type veth peer name sync0 netns "$B"
ip -n "$A" addr add 10.99.0.1/24 dev sync0
ip -n "$B" addr add 10.99.0.2/24 dev sync0
ip -n "$A" link set sync0 up
ip -n "$B" link set sync0 up

# conf NAME LOCAL PEER [OPTIONS]: a NOTRACK conntrackd on the link, files $TMP/NAME.*.
conf() { conntrackd_conf "$TMP/$1.conf" notrack udp "$2" "$3" "${4:-}"; }
conf a 10.99.0.1 10.99.0.2
conf b 10.99.0.2 10.99.0.1
conf bx 10.99.0.2 10.99.0.1 "ExpectationSync On"

EX=(cargo run -q -p statewall-engine --example sync_datagrams)
"${EX[@]}" encode >"$TMP/ours.hex" 2>"$TMP/build.log" ||
	die "the example sync_datagrams did not build or run: $(tail -3 "$TMP/build.log")"
"${EX[@]}" encode-ftp >"$TMP/ftp.hex" 2>>"$TMP/build.log" ||
	die "sync_datagrams encode-ftp failed: $(tail -3 "$TMP/build.log")"

up() { [[ -S $TMP/$1.ctl ]]; }
expected() { in_b conntrackd -C "$TMP/bx.conf" -e expect 2>/dev/null | grep -q "dport=50000"; }
kernel_expects() { in_b conntrack -L expect 2>/dev/null | grep -q "dport=50000"; }
# send_hex FILE: each line of FILE (a datagram in hex) from A's end of the link to B's.
send_hex() {
	ip netns exec "$A" "$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.99.0.1", 3780))
for line in open(sys.argv[1]):
    s.sendto(bytes.fromhex(line.strip()), ("10.99.0.2", 3780))
    time.sleep(0.05)
' "$1"
}
in_b() { ip netns exec "$B" "$@"; }
# The external cache counted the last message (the only destroy).
counted() { in_b conntrackd -C "$TMP/b.conf" -s 2>/dev/null | grep -q "connections destroyed:[[:space:]]*1"; }
listening() { grep -q "listening on" "$TMP/tcpdump.log"; }
# conntrackd in A took in the six changes (4 created, 1 updated, 1 destroyed in its
# internal cache): it has sent them. (The datagrams on the link do not say it: conntrackd
# packs several messages into one when they come together.)
# What the capture holds so far, read by Statewall: $TMP/theirs.txt, a message a line.
read_capture() {
	"$PY" - "$TMP/link.pcap" >"$TMP/theirs.hex" 2>/dev/null <<'PYEOF' || return 1
import sys
sys.path.insert(0, "scripts/swlab")
from pcapng import read_packets
for p in read_packets(sys.argv[1]):
    d = p.data
    ihl = (d[14] & 0x0F) * 4
    print(d[14 + ihl + 8:].hex())
PYEOF
	"${EX[@]}" decode <"$TMP/theirs.hex" >"$TMP/theirs.txt" 2>&1
}
captured_six() { read_capture && (($(grep -c -v "^ctl" "$TMP/theirs.txt") >= 6)); }
sent_six() {
	ip netns exec "$A" conntrackd -C "$TMP/a.conf" -s 2>/dev/null |
		sed -n '/cache internal/,/^$/p' | tr -s ' \t\n' ' ' |
		grep -q "created: 4 failed: 0 connections updated: 1 failed: 0 connections destroyed: 1"
}

# ---------------------------------------------------------------- cases

case_to_conntrackd() {
	LOG=$TMP/b.log
	in_b conntrackd -C "$TMP/b.conf" -d >/dev/null 2>&1 && wait_for 10 up b ||
		{ fail "conntrackd did not start in $B"; return; }
	send_hex "$TMP/ours.hex" || { fail "could not send"; return; }
	wait_for 5 counted || fail "conntrackd did not count the messages"
	in_b conntrackd -C "$TMP/b.conf" -s >"$TMP/b.stats" 2>&1
	in_b conntrackd -C "$TMP/b.conf" -e >"$TMP/b.external" 2>&1
	ext=$(sed -n '/cache external/,/^$/p' "$TMP/b.stats")
	grep -q "connections created:[[:space:]]*4[[:space:]]*failed:[[:space:]]*0" <<<"$ext" ||
		fail "external cache: not 4 created ($(tr -s ' \t\n' ' ' <<<"$ext"))"
	grep -q "connections updated:[[:space:]]*1[[:space:]]*failed:[[:space:]]*0" <<<"$ext" ||
		fail "external cache: not 1 updated"
	grep -q "0 Malformed msgs" "$TMP/b.stats" || fail "conntrackd counted malformed messages"
	grep -q "tcp .*ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=41000 dport=80 \[ASSURED\] mark=7" "$TMP/b.external" &&
		grep -q "udp .*src=10.10.0.2 dst=10.10.0.3 sport=5353 dport=53 mark=0" "$TMP/b.external" &&
		grep -q "tcp .*SYN_SENT src=fd00::2 dst=fd00::3 sport=41001 dport=443 \[UNREPLIED\]" "$TMP/b.external" &&
		(($(wc -l <"$TMP/b.external") == 3)) ||
		fail "the external cache is not the three connections: $(tr '\n' '|' <"$TMP/b.external")"
	in_b conntrackd -C "$TMP/b.conf" -c >/dev/null 2>&1 || fail "conntrackd -c failed"
	in_b conntrack -L >"$TMP/b.kernel" 2>/dev/null
	in_b conntrack -L -f ipv6 >>"$TMP/b.kernel" 2>/dev/null
	awk '$1 == "tcp" && $4 == "ESTABLISHED" && $3 > 430000 && /sport=41000 dport=80 src=10.10.0.3/ && /\[ASSURED\] mark=7/' "$TMP/b.kernel" | grep -q . &&
		awk '$1 == "udp" && $3 > 160 && $3 <= 170 && /sport=5353 dport=53 src=10.10.0.3 dst=10.10.0.2 sport=53 dport=5353 mark=0/' "$TMP/b.kernel" | grep -q . &&
		grep -q "SYN_SENT src=fd00::2 dst=fd00::3 sport=41001 dport=443 \[UNREPLIED\] src=fd00::3" "$TMP/b.kernel" &&
		! grep -q "^icmp" "$TMP/b.kernel" ||
		fail "the kernel's table after the commit: $(tr '\n' '|' <"$TMP/b.kernel")"
	DET="4 created, 1 updated, 1 destroyed, 0 malformed; committed to the kernel"
}

case_from_conntrackd() {
	LOG=$TMP/a.log
	in_b conntrackd -C "$TMP/b.conf" -k >/dev/null 2>&1
	in_b tcpdump -i sync0 -U -w "$TMP/link.pcap" udp port 3780 >"$TMP/tcpdump.log" 2>&1 &
	TDPID=$!
	wait_for 10 listening || { fail "tcpdump did not start"; return; }
	ip netns exec "$A" conntrackd -C "$TMP/a.conf" -d >/dev/null 2>&1 && wait_for 10 up a ||
		{ fail "conntrackd did not start in $A"; return; }
	ip netns exec "$A" sh -c '
conntrack -I -p tcp -s 10.10.0.2 -d 10.10.0.3 --sport 40000 --dport 80 --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 432000 -m 7
conntrack -I -p udp -s 10.10.0.2 -d 10.10.0.3 --sport 5353 --dport 53 -t 30
conntrack -I -p icmp -s 10.10.0.2 -d 10.10.0.3 --icmp-type 8 --icmp-code 0 --icmp-id 4660 -t 30
conntrack -I -p tcp -s fd00::2 -d fd00::3 --sport 40001 --dport 443 --state SYN_SENT -t 120
conntrack -U -p udp -s 10.10.0.2 -d 10.10.0.3 --sport 5353 --dport 53 -t 60
conntrack -D -p icmp -s 10.10.0.2 -d 10.10.0.3
' >/dev/null 2>&1 || { fail "conntrack -I/-U/-D failed"; return; }
	wait_for 10 sent_six || fail "conntrackd did not take in the 6 changes"
	wait_for 10 captured_six || fail "fewer than 6 conntrack messages captured on the link"
	stop_pid "$TDPID"
	TDPID=''
	grep -q malformed "$TMP/theirs.txt" && fail "malformed: $(grep -m1 malformed "$TMP/theirs.txt")"
	local want=(
		"new .*V4(\[10, 10, 0, 2\], \[10, 10, 0, 3\]).* proto=Some(6) ports=Some((40000, 80)) state=Some(3) status=Some(14) timeout=Some(432000) mark=Some(7)"
		"new .*proto=Some(17) ports=Some((5353, 53)) state=None status=Some(8) timeout=Some(30) mark=Some(0)"
		"new .*proto=Some(1) .*icmp=Some(8)/Some(0)/Some(4660)"
		"new .*V6(.*proto=Some(6) ports=Some((40001, 443)) state=Some(1) status=Some(8) timeout=Some(120)"
		"upd .*proto=Some(17) ports=Some((5353, 53)).*timeout=Some(60)"
		"del .*proto=Some(1) .*icmp=Some(8)/Some(0)/Some(4660)"
	)
	for w in "${want[@]}"; do
		grep -q -- "$w" "$TMP/theirs.txt" || fail "no message like: $w"
	done
	DET="$(grep -c -v "^ctl" "$TMP/theirs.txt") conntrack messages read, none malformed"
}

case_expect_to_conntrackd() {
	LOG=$TMP/bx.log
	in_b conntrackd -C "$TMP/b.conf" -k >/dev/null 2>&1
	wait_for 10 test ! -S "$TMP/b.ctl"
	in_b conntrack -F >/dev/null 2>&1
	in_b conntrackd -C "$TMP/bx.conf" -d >/dev/null 2>&1 && wait_for 10 up bx ||
		{ fail "conntrackd (ExpectationSync) did not start in $B"; return; }
	send_hex "$TMP/ftp.hex" || { fail "could not send"; return; }
	wait_for 5 expected || fail "conntrackd's external expectation cache: $(in_b conntrackd -C "$TMP/bx.conf" -e expect 2>&1 | tr '\n' '|')"
	in_b conntrackd -C "$TMP/bx.conf" -s >"$TMP/bx.stats" 2>&1
	grep -q "0 Malformed msgs" "$TMP/bx.stats" || fail "conntrackd counted malformed messages"
	# conntrackd 1.4.7's `-c` commits the entries; `-c expect` the expectations (their
	# masters must be in the kernel first).
	in_b conntrackd -C "$TMP/bx.conf" -c >/dev/null 2>&1 || fail "conntrackd -c failed"
	in_b conntrackd -C "$TMP/bx.conf" -c expect >/dev/null 2>&1 || fail "conntrackd -c expect failed"
	wait_for 5 kernel_expects
	in_b conntrack -L expect >"$TMP/bx.kernel" 2>/dev/null
	grep -q "proto=6 src=10.10.0.3 dst=10.10.0.2 sport=0 dport=50000 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.10.0.2 master-dst=10.10.0.3 sport=40021 dport=21" "$TMP/bx.kernel" ||
		fail "the peer kernel's expectations after the commit: $(tr '\n' '|' <"$TMP/bx.kernel")"
	in_b conntrackd -C "$TMP/bx.conf" -k >/dev/null 2>&1
	DET="the FTP control connection and its expectation: external cache, committed to the kernel"
}

echo "$PROG: namespaces $A, $B; conntrackd $(conntrackd -v 2>&1 | grep -o 'v[0-9.]*' | head -1)"
for c in to-conntrackd expect-to-conntrackd from-conntrackd; do
	check "$c"
done

finish 15
