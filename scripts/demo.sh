#!/usr/bin/env bash
# Statewall, the demo: a live gateway between two hosts on the built-in lab.
#
#   scripts/demo.sh [--no-deps] [--offline]
#
# As root on a fresh Debian: installs the dependencies (scripts/install-deps.sh; --no-deps skips
# that), builds, brings the lab up (scripts/lab.sh: client 10.10.0.2 — gateway — server
# 10.10.0.3), starts `statewall run` with the seed-style ruleset examples/seed-gateway.yaml
# (HTTP 80 and FTP 21 allowed NEW from the client, ESTABLISHED both ways, FTP data RELATED,
# 8080 refused, INVALID dropped), then from the client: curl to a web server on 80 (works),
# curl to 8080 (refused by the firewall), a passive FTP download from vsftpd (works through
# the FTP helper), a ping; then statewallctl's stats and connection table, the lab down and
# the daemon stopped — also on Ctrl-C.
#
# --offline instead replays the bundled capture (tests/data/http-gateway.pcapng, recorded
# through the kernel's bridge + iptables) through the same engine and shows each packet's
# verdict beside the kernel's.
set -euo pipefail

cd "$(dirname "$0")/.."
PROG=demo
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
CONFIG=examples/seed-gateway.yaml
deps=1
offline=0
for arg in "$@"; do
	case $arg in
	--no-deps) deps=0 ;;
	--offline) offline=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument $arg (try --help)" ;;
	esac
done

if [[ -t 1 ]]; then
	BOLD=$'\033[1m' PLAIN=$'\033[0m'
else
	BOLD='' PLAIN=''
fi
title() {
	printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"
}

if ((deps)); then
	title "dependencies (scripts/install-deps.sh)"
	scripts/install-deps.sh
fi
load_cargo_env

# STATEWALL=/path/to/statewall uses that binary (and its statewallctl) instead of building.
if [[ -n ${STATEWALL:-} ]]; then
	BIN=$STATEWALL
else
	title "cargo build --release"
	cargo build --release --bin statewall --bin statewallctl
	BIN=${CARGO_TARGET_DIR:-target}/release/statewall
fi
CTL=$(dirname "$BIN")/statewallctl

title "statewall check $CONFIG"
"$BIN" check "$CONFIG"

TMP=$(mktemp -d /tmp/sw-demo.XXXXXX)
export LAB=swdemo
GW=$LAB-gw
CLIENT=$LAB-client
SERVER=$LAB-server
SOCK=$TMP/control.sock
cleanup() {
	set +e
	[[ -f $TMP/statewall.pid ]] && stop_pid "$(cat "$TMP/statewall.pid")" 5
	for p in "$TMP"/*.srvpid; do
		[[ -f $p ]] && kill "$(cat "$p")" 2>/dev/null
	done
	if ((offline == 0)) && [[ $(id -u) -eq 0 ]]; then
		scripts/lab.sh down >/dev/null 2>&1
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

if ((offline)); then
	prefix=tests/data/http-gateway
	title "statewall replay --config $CONFIG --pcap $prefix.pcapng"
	"$BIN" replay --config "$CONFIG" --pcap "$prefix.pcapng" >"$TMP/replay.jsonl"
	"$PY" "$SWLAB" verdicts table "$TMP/replay.jsonl" --capture "$prefix.pcapng"
	title "the same capture through the Linux kernel (bridge + br_netfilter + iptables)"
	"$PY" "$SWLAB" verdicts compare "$prefix.kernel.jsonl" "$TMP/replay.jsonl" \
		--capture "$prefix.pcapng"
	exit 0
fi

[[ $(id -u) -eq 0 ]] || {
	echo "demo: the live demo needs root (network namespaces, AF_XDP); try --offline" >&2
	exit 1
}

title "lab up (scripts/lab.sh): $CLIENT — $GW (ports lan, wan) — $SERVER"
scripts/lab.sh up

# The server: a web server on 80, a closed 8080, and vsftpd with a file to fetch.
mkdir -p "$TMP/www" "$TMP/ftp/pub" "$TMP/empty"
echo "hello through statewall" >"$TMP/www/index.html"
head -c 4000000 /dev/urandom >"$TMP/ftp/pub/data.bin"
chmod -R a+rX "$TMP/ftp" "$TMP/www"
chmod 755 "$TMP"
cat >"$TMP/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=10.10.0.3
anonymous_enable=YES
no_anon_password=YES
anon_root=$TMP/ftp
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port=30000
pasv_max_port=30100
seccomp_sandbox=NO
secure_chroot_dir=$TMP/empty
background=NO
xferlog_enable=NO
EOF
ip netns exec "$SERVER" "$PY" -m http.server 80 --bind 10.10.0.3 --directory "$TMP/www" \
	>"$TMP/http.log" 2>&1 &
echo $! >"$TMP/http.srvpid"
ip netns exec "$SERVER" vsftpd "$TMP/vsftpd.conf" >"$TMP/vsftpd.log" 2>&1 &
echo $! >"$TMP/ftp.srvpid"

title "statewall run --config $CONFIG (in $GW)"
ip netns exec "$GW" "$BIN" run --config "$CONFIG" --state "$TMP/state" --control-socket "$SOCK" \
	>"$TMP/statewall.log" 2>&1 &
echo $! >"$TMP/statewall.pid"
for _ in $(seq 100); do
	[[ -S $SOCK ]] && break
	kill -0 "$(cat "$TMP/statewall.pid")" 2>/dev/null || {
		cat "$TMP/statewall.log" >&2
		exit 1
	}
	sleep 0.1
done
cat "$TMP/statewall.log"
sleep 0.5

results=()
try() { # name, expected (pass|fail), command...
	local name=$1 want=$2
	shift 2
	local got=fail
	if "$@" >"$TMP/out" 2>&1; then got=pass; fi
	local verdict=OK
	[[ $got == "$want" ]] || verdict=UNEXPECTED
	printf '%-46s %-8s (expected %s)  %s\n' "$name" "$got" "$want" "$verdict"
	results+=("$verdict")
}

title "traffic from the client"
try "curl http://10.10.0.3/ (port 80, allowed)" pass \
	ip netns exec "$CLIENT" curl -sf -m 5 http://10.10.0.3/
try "curl http://10.10.0.3:8080/ (refused by a reject rule)" fail \
	ip netns exec "$CLIENT" curl -sSf -m 5 http://10.10.0.3:8080/
echo "    ($(head -c 200 "$TMP/out"))"
try "passive FTP download of 4 MB (helper: RELATED)" pass \
	ip netns exec "$CLIENT" curl -sf -m 20 -o "$TMP/got.bin" ftp://10.10.0.3/pub/data.bin
if cmp -s "$TMP/got.bin" "$TMP/ftp/pub/data.bin"; then
	echo "    (file intact: $(md5sum <"$TMP/got.bin" | cut -c1-32))"
fi
try "ping 10.10.0.3" pass ip netns exec "$CLIENT" ping -c 2 -W 2 10.10.0.3
try "a NEW connection from the server side (dropped)" fail \
	ip netns exec "$SERVER" curl -sf -m 3 http://10.10.0.2:80/

title "statewallctl stats"
"$CTL" --socket "$SOCK" stats
title "statewallctl conntrack list"
"$CTL" --socket "$SOCK" conntrack list

title "stopping"
kill -TERM "$(cat "$TMP/statewall.pid")"
wait "$(cat "$TMP/statewall.pid")" 2>/dev/null || true
rm -f "$TMP/statewall.pid"
tail -n 2 "$TMP/statewall.log"
if ip -n "$GW" link show | grep -q xdp; then
	echo "demo: an XDP program is still attached" >&2
	results+=(UNEXPECTED)
fi

bad=0
for r in "${results[@]}"; do [[ $r == OK ]] || bad=$((bad + 1)); done
title "summary"
echo "${#results[@]} checks, $bad unexpected"
((bad == 0))
