#!/usr/bin/env bash
# The live end-to-end suite: real clients and servers through the gateway, once through the
# kernel oracle (scripts/lab.sh up --kernel: a bridge with br_netfilter, the rules in
# iptables-legacy) and once through statewall (`statewall run` in the gateway namespace,
# forwarding lan <-> wan over AF_XDP), each in a fresh lab; every case must end the same way.
#
#   scripts/test-live.sh [--kernel-only|--statewall-only] [--keep] [CASE ...]
#
# The rules are written once, in iptables-save form (scripts/live/rules/*.rules, ports as
# `-m physdev --physdev-in lan`), loaded as they are into the kernel and translated for
# statewall with `statewall import-iptables` at test time. Cases (default: all):
#   http4-80 http4-8080 http6-80 http6-8080   curl <-> python3 http.server (80 open; 8080
#                                           REJECT tcp-reset: refused, not timed out)
#   ping4 ping6
#   ftp-epsv-helper ftp-pasv-helper ftp-eprt-helper ftp-port-helper
#                                           vsftpd, 8 MiB download, md5 compared
#   iperf3-tcp iperf3-udp                   5 s TCP (throughput, retransmissions), 3 s UDP at
#                                           100 Mbit/s (at most 5% lost)
#   reload                                  a 15 s iperf3 while the ruleset is swapped 10 times,
#                                           half of them without any NEW accept rule
#   bad-config-reload                       an invalid ruleset on reload (during a 5 s iperf3) is
#                                           refused, the daemon says why, traffic goes on
#   ftp-epsv-nohelper ftp-eprt-nohelper     without the helper the data connection is blocked
#   shutdown                                daemon stopped: no XDP program, no namespace left
#
# A case passes when the kernel gives the expected outcome and statewall gives the kernel's.
# The last line is "N passed, N failed"; the exit status is 1 on any failure. Needs root.
# Uses ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall} (cargo build --release);
# STATEWALL_RUN_ARGS adds options to `statewall run`. --keep leaves the work directory (logs,
# generated YAML) in /tmp.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-live
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
[[ $BIN == /* ]] || BIN=$REPO/$BIN
LIVE=$REPO/scripts/live
START=$SECONDS
SERVER4=10.10.0.3
SERVER6=fd00:10::3

ALL_CASES=(
	http4-80 http4-8080 http6-80 http6-8080 ping4 ping6
	ftp-epsv-helper ftp-pasv-helper ftp-eprt-helper ftp-port-helper
	iperf3-tcp iperf3-udp reload bad-config-reload
	ftp-epsv-nohelper ftp-eprt-nohelper shutdown
)
declare -A EXPECT=(
	[http4-80]=ok [http4-8080]=refused [http6-80]=ok [http6-8080]=refused [ping4]=ok [ping6]=ok
	[ftp-epsv-helper]=ok [ftp-pasv-helper]=ok [ftp-eprt-helper]=ok [ftp-port-helper]=ok
	[iperf3-tcp]=ok [iperf3-udp]=ok [reload]=ok [bad-config-reload]=ok
	[ftp-epsv-nohelper]=fail [ftp-eprt-nohelper]=fail [shutdown]=ok
)

sides=(kernel statewall)
keep=0
cases=()
for a in "$@"; do
	case $a in
	--kernel-only) sides=(kernel) ;;
	--statewall-only) sides=(statewall) ;;
	--keep) keep=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	-*) die "unknown option $a (try --help)" ;;
	*)
		[[ -n ${EXPECT[$a]:-} ]] || die "unknown case $a (cases: ${ALL_CASES[*]})"
		cases+=("$a")
		;;
	esac
done
((${#cases[@]} > 0)) || cases=("${ALL_CASES[@]}")
# shutdown always runs (it is the teardown); keep the suite's order whatever the order given.
selected() {
	local c
	for c in "${cases[@]}"; do [[ $c == "$1" ]] && return 0; done
	return 1
}
ordered=()
for c in "${ALL_CASES[@]}"; do
	if selected "$c" || [[ $c == shutdown ]]; then ordered+=("$c"); fi
done
cases=("${ordered[@]}")

need_root "network namespaces, iptables, XDP"
need_cmds ip iptables-legacy-restore ip6tables-legacy-restore curl ping vsftpd iperf3 jq ss \
	ethtool md5sum timeout "$PY"
need_bins "$BIN"

TMP=$(mktemp -d /tmp/sw-live.XXXXXX)
chmod 755 "$TMP"
LABS=()   # lab prefixes built by this run
DPID=''   # the statewall daemon
SIDE=''
LAB=''
CLIENT='' GW='' SERVER=''

# Stop the daemon (given its 3 s to exit), then delete the lab: lab.sh down stops what else
# runs in its namespaces (the servers, anything a case left), all started by this run.
teardown_lab() {
	stop_pid "$DPID"
	DPID=''
	lab_down "$1"
}
cleanup() {
	local l
	trap - EXIT INT TERM
	for l in "${LABS[@]}"; do teardown_lab "$l"; done
	if ((keep)); then echo "test-live: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

# ---------------------------------------------------------------- rulesets and peers' data

echo "test-live: translating scripts/live/rules/*.rules with statewall import-iptables"
for r in seed nohelper no-new; do
	"$BIN" import-iptables "$LIVE/rules/$r.rules" >"$TMP/$r.yaml" 2>"$TMP/$r.import.log" || {
		cat "$TMP/$r.import.log" >&2
		die "statewall import-iptables $r.rules failed"
	}
	"$BIN" check "$TMP/$r.yaml" >"$TMP/$r.check.log" 2>&1 || {
		cat "$TMP/$r.check.log" >&2
		die "statewall check of the translated $r.rules failed"
	}
done
"$BIN" check "$LIVE/bad.yaml" >/dev/null 2>&1 && die "scripts/live/bad.yaml passes statewall check"
# The kernel takes each family's part of a file through its own restore tool.
for r in seed nohelper no-new bad; do
	awk -v v4="$TMP/$r.v4" -v v6="$TMP/$r.v6" '
		BEGIN { out = v4; printf "" > v6 }
		/^# Generated by ip6tables-save/ { out = v6 }
		{ print > out }' "$LIVE/rules/$r.rules"
done

mkdir -p "$TMP/pub" "$TMP/empty"
chmod 755 "$TMP/pub" "$TMP/empty"
head -c $((8 << 20)) /dev/urandom >"$TMP/pub/data.bin"
printf '<html><body>statewall live suite</body></html>\n' >"$TMP/pub/index.html"
chmod 644 "$TMP/pub/data.bin" "$TMP/pub/index.html"
DATA_MD5=$(md5sum <"$TMP/pub/data.bin" | cut -d' ' -f1)
ftpuser=ftp
getent passwd ftp >/dev/null || ftpuser=nobody
sed -e "s|@ROOT@|$TMP/pub|g" -e "s|@EMPTY@|$TMP/empty|g" -e "s|@FTPUSER@|$ftpuser|g" \
	-e "s|@LOG@|$TMP/vsftpd.log|g" "$LIVE/vsftpd.conf" >"$TMP/vsftpd.conf"

# ---------------------------------------------------------------- the lab, one side at a time

kernel_load() { # kernel_load RULESET: both families, as iptables-restore does (all or nothing)
	ip netns exec "$GW" iptables-legacy-restore <"$TMP/$1.v4" &&
		ip netns exec "$GW" ip6tables-legacy-restore <"$TMP/$1.v6"
}

xdp_on() { # xdp_on NS: an XDP program is attached to a link in NS
	ip -n "$1" link show 2>/dev/null | grep -q xdp
}

sw_start() { # sw_start RULESET
	cp "$TMP/$1.yaml" "$TMP/statewall.yaml"
	local args=()
	if [[ -n ${STATEWALL_RUN_ARGS:-} ]]; then read -ra args <<<"$STATEWALL_RUN_ARGS"; fi
	echo "=== $(date +%T) statewall run ($1)" >>"$TMP/statewall.log"
	rm -f "$TMP/statewall.sock"
	ip netns exec "$GW" "$BIN" run --config "$TMP/statewall.yaml" --state none \
		--control-socket "$TMP/statewall.sock" "${args[@]}" >>"$TMP/statewall.log" 2>&1 &
	DPID=$!
	local tries=100
	until ip -n "$GW" link show lan | grep -q xdp && ip -n "$GW" link show wan | grep -q xdp; do
		if ! daemon_alive; then
			wait "$DPID" 2>/dev/null
			DPID=''
			return 1
		fi
		((--tries > 0)) || return 1
		sleep 0.1
	done
	sleep 0.3
}

SW_EXIT=''
sw_stop() { # stop the daemon as an operator would; SW_EXIT: its exit status or "killed"
	SW_EXIT=''
	daemon_alive || {
		DPID=''
		return 1
	}
	kill -TERM "$DPID"
	local tries=100
	while kill -0 "$DPID" 2>/dev/null; do
		if ((--tries == 0)); then
			kill -KILL "$DPID"
			wait "$DPID" 2>/dev/null
			SW_EXIT=killed
			DPID=''
			return 1
		fi
		sleep 0.1
	done
	wait "$DPID"
	SW_EXIT=$?
	DPID=''
	[[ $SW_EXIT == 0 ]]
}

reload() { # reload RULESET: kernel iptables-restore; statewall: new config file + SIGHUP
	if [[ $SIDE == kernel ]]; then
		kernel_load "$1"
	else
		daemon_alive || return 1
		cp "$TMP/$1.yaml" "$TMP/statewall.yaml.new"
		mv -f "$TMP/statewall.yaml.new" "$TMP/statewall.yaml"
		kill -HUP "$DPID"
	fi
}

# Switch to another ruleset from scratch: the kernel restores it, statewall is restarted.
switch_to() {
	if [[ $SIDE == kernel ]]; then
		kernel_load "$1"
	else
		sw_stop
		if xdp_on "$GW"; then return 1; fi
		sw_start "$1"
	fi
}

side_up() { # side_up kernel|statewall; returns non-zero with SETUP_ERR set
	SIDE=$1
	LAB=swl$$${SIDE:0:1}
	LABS+=("$LAB")
	CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server
	local kopt=()
	[[ $SIDE == kernel ]] && kopt=(--kernel)
	LAB=$LAB scripts/lab.sh up "${kopt[@]}" >"$TMP/$SIDE-lab.log" 2>&1 || {
		SETUP_ERR="scripts/lab.sh up failed: $(tail -1 "$TMP/$SIDE-lab.log")"
		return 1
	}
	if [[ $SIDE == kernel ]]; then
		# REJECT --reject-with tcp-reset routes its reset out of the bridge; without a route the
		# kernel drops it silently. Routes, no address (IPv6 only the link-local one, which the
		# reset needs for neighbour discovery): the gateway stays invisible on the wire.
		ip -n "$GW" route add 10.10.0.0/24 dev br0
		ip netns exec "$GW" sysctl -qw net.ipv6.conf.br0.router_solicitations=0 \
			net.ipv6.conf.br0.accept_ra=0 net.ipv6.conf.br0.dad_transmits=0 \
			net.ipv6.conf.br0.disable_ipv6=0
		ip -n "$GW" -6 route add fd00:10::/64 dev br0
		kernel_load seed 2>"$TMP/kernel-rules.log" || {
			SETUP_ERR="iptables-restore of seed.rules failed: $(head -1 "$TMP/kernel-rules.log")"
			return 1
		}
	fi
	local port
	for port in 80 8080; do
		ip netns exec "$SERVER" "$PY" -m http.server "$port" --bind :: --directory "$TMP/pub" \
			>"$TMP/$SIDE-http$port.log" 2>&1 &
	done
	ip netns exec "$SERVER" vsftpd "$TMP/vsftpd.conf" >"$TMP/$SIDE-vsftpd.out" 2>&1 &
	ip netns exec "$SERVER" iperf3 -s -p 5201 >"$TMP/$SIDE-iperf3.log" 2>&1 &
	for port in 80 8080 21 5201; do
		wait_for 10 ns_listening "$SERVER" tcp "$port" || {
			SETUP_ERR="nothing listens on the server's port $port"
			return 1
		}
	done
	if [[ $SIDE == statewall ]]; then
		sw_start seed || {
			SETUP_ERR="statewall run did not start: $(grep -v '^===' "$TMP/statewall.log" |
				grep -m1 -i -e error -e . || echo "no output")"
			return 1
		}
	fi
}

# ---------------------------------------------------------------- cases
# Each sets OUT (ok, fail or what went wrong) and DET (what happened, briefly).

curl_class() { # curl exit status -> words
	case $1 in
	0) echo "ok" ;;
	7) echo "refused (curl 7)" ;;
	28) echo "timed out (curl 28)" ;;
	*) echo "curl exit $1" ;;
	esac
}

case_http() { # case_http URL
	local rc=0
	in_client curl -sS -g -o "$TMP/http.out" --connect-timeout 3 --max-time 5 "$1" \
		2>/dev/null || rc=$?
	case $rc in
	0) OUT=ok ;;
	7) OUT=refused ;;
	28) OUT=timeout ;;
	*) OUT=fail ;;
	esac
	if ((rc == 0)); then DET="$(wc -c <"$TMP/http.out") bytes"; else DET=$(curl_class "$rc"); fi
}

case_ping() { # case_ping -4|-6 ADDR
	local rc=0 line
	line=$(in_client ping "$1" -c 3 -i 0.2 -W 2 "$2" 2>&1 | grep 'packets transmitted') || rc=$?
	if ((rc == 0)) && [[ $line != *" 0 received"* ]]; then
		OUT=ok
	else
		OUT=fail
	fi
	DET=$(sed -E 's/.*, ([0-9]+) received.*/\1\/3 replies/' <<<"$line")
}

case_ftp() { # case_ftp CURL-OPTIONS...
	local rc=0 t0=$SECONDS md5
	rm -f "$TMP/ftp.out"
	in_client curl -sS --connect-timeout 3 --max-time 6 "$@" -o "$TMP/ftp.out" \
		"ftp://$SERVER4/data.bin" 2>/dev/null || rc=$?
	if ((rc != 0)); then
		OUT=fail
		DET="$(curl_class "$rc"), $((SECONDS - t0))s"
		return
	fi
	md5=$(md5sum <"$TMP/ftp.out" | cut -d' ' -f1)
	if [[ $md5 == "$DATA_MD5" ]]; then
		OUT=ok
		DET="8 MiB, md5 ok"
	else
		OUT=corrupt
		DET="md5 $md5 differs ($(wc -c <"$TMP/ftp.out") bytes)"
	fi
}

case_iperf_tcp() {
	local rc=0 j bps retr bytes
	j=$TMP/$SIDE-iperf3-tcp.json
	in_client timeout 25 iperf3 -c "$SERVER4" -p 5201 -t 5 --connect-timeout 3000 -J >"$j" 2>&1 ||
		rc=$?
	if ((rc != 0)); then
		OUT=fail
		DET="iperf3 exit $rc: $(jq -r '.error // empty' "$j" 2>/dev/null | head -c 60)"
		return
	fi
	bps=$(jq -r '.end.sum_received.bits_per_second' "$j")
	retr=$(jq -r '.end.sum_sent.retransmits // 0' "$j")
	bytes=$(jq -r '.end.sum_sent.bytes' "$j")
	DET=$(awk -v b="$bps" -v r="$retr" 'BEGIN { printf "%.2f Gbit/s, %d retr", b / 1e9, r }')
	# A retransmission storm: more than 1% of the full-sized segments sent again.
	if awk -v r="$retr" -v b="$bytes" 'BEGIN { exit !(r * 1448 * 100 > b) }'; then
		OUT=retransmit-storm
	else
		OUT=ok
	fi
}

case_iperf_udp() {
	local rc=0 j bps lost
	j=$TMP/$SIDE-iperf3-udp.json
	in_client timeout 25 iperf3 -c "$SERVER4" -p 5201 -u -b 100M -t 3 --connect-timeout 3000 -J \
		>"$j" 2>&1 || rc=$?
	if ((rc != 0)); then
		OUT=fail
		DET="iperf3 exit $rc: $(jq -r '.error // empty' "$j" 2>/dev/null | head -c 60)"
		return
	fi
	bps=$(jq -r '.end.sum.bits_per_second' "$j")
	lost=$(jq -r '.end.sum.lost_percent' "$j")
	DET=$(awk -v b="$bps" -v l="$lost" 'BEGIN { printf "%.0f Mbit/s, %.2f%% lost", b / 1e6, l }')
	if awk -v l="$lost" 'BEGIN { exit !(l <= 5) }'; then OUT=ok; else OUT=lossy; fi
}

# A 15 s iperf3 keeps running while the ruleset is swapped 10 times between seed and no-new
# (no rule accepts NEW). Requires: iperf3 completes with no 1-second interval empty, every
# reload accepted, a new connection refused under no-new and admitted again under seed.
case_reload() {
	local rc=0 j pid i probe_new='' probe_back='' bad_reload=0 zero min lines=0 logged
	j=$TMP/$SIDE-reload.json
	[[ $SIDE == statewall ]] && lines=$(wc -l <"$TMP/statewall.log")
	in_client timeout 40 iperf3 -c "$SERVER4" -p 5201 -t 15 -i 1 --connect-timeout 3000 -J \
		>"$j" 2>&1 &
	pid=$!
	sleep 1.5
	for i in 1 2 3 4 5 6 7 8 9 10; do
		if ((i % 2)); then reload no-new || bad_reload=$((bad_reload + 1)); else
			reload seed || bad_reload=$((bad_reload + 1))
		fi
		sleep 0.6
		if ((i == 1)); then
			probe_new=ok
			in_client curl -sS -o /dev/null --max-time 2 "http://$SERVER4/" 2>/dev/null ||
				probe_new=fail
		elif ((i == 2)); then
			probe_back=ok
			in_client curl -sS -o /dev/null --max-time 2 "http://$SERVER4/" 2>/dev/null ||
				probe_back=fail
		else
			sleep 0.9
		fi
	done
	wait "$pid" || rc=$?
	if ((rc != 0)); then
		OUT=fail
		DET="iperf3 exit $rc after the swaps: $(jq -r '.error // empty' "$j" 2>/dev/null | head -c 50)"
		return
	fi
	zero=$(jq '[.intervals[].sum.bytes | select(. == 0)] | length' "$j")
	min=$(jq '[.intervals[].sum.bits_per_second] | min' "$j")
	DET=$(awk -v m="$min" -v z="$zero" 'BEGIN { printf "slowest second %.0f Mbit/s, %d empty", m / 1e6, z }')
	DET="$DET; new conn under no-new: $probe_new, after: $probe_back"
	if [[ $SIDE == statewall ]]; then
		logged=$(tail -n +$((lines + 1)) "$TMP/statewall.log" | grep -c 'reload.*generation')
		DET="$DET; $logged reloads logged"
	fi
	if ((bad_reload > 0)); then
		OUT=reload-failed
		DET="$bad_reload of 10 reloads failed; $DET"
	elif ((zero > 0)); then
		OUT=stalled
	elif [[ $probe_new != fail || $probe_back != ok ]]; then
		OUT=rules-not-applied
	else
		OUT=ok
	fi
}

# An invalid ruleset on reload, in the middle of a 5 s iperf3 (paced at 500 Mbit/s): it must
# be refused (kernel: iptables-restore fails; statewall: the daemon keeps running and its log
# says why, naming the bad port), the iperf3 must run to its end with no empty second, and a
# new connection must still be admitted (bad.rules' DROP policy would refuse it).
case_bad_reload() {
	local rc=0 j pid refused='' why='' lines=0 zero=-1 newconn=ok
	j=$TMP/$SIDE-bad-reload.json
	in_client timeout 20 iperf3 -c "$SERVER4" -p 5201 -t 5 -b 500M -i 1 --connect-timeout 3000 -J \
		>"$j" 2>&1 &
	pid=$!
	sleep 1.5
	if [[ $SIDE == kernel ]]; then
		if ip netns exec "$GW" iptables-legacy-restore <"$TMP/bad.v4" >"$TMP/bad.log" 2>&1; then
			refused=no
		else
			refused=yes
			why=$(grep -m1 -iE 'error|fail|invalid' "$TMP/bad.log")
		fi
	else
		lines=$(wc -l <"$TMP/statewall.log")
		if daemon_alive; then
			cp "$LIVE/bad.yaml" "$TMP/statewall.yaml.new"
			mv -f "$TMP/statewall.yaml.new" "$TMP/statewall.yaml"
			kill -HUP "$DPID"
			sleep 1
		fi
		if daemon_alive; then
			why=$(tail -n +$((lines + 1)) "$TMP/statewall.log" | grep -m1 -iE '70000|invalid port')
			if [[ -n $why ]]; then refused=yes; else refused=silent; fi
		else
			refused=daemon-died
		fi
		cp "$TMP/seed.yaml" "$TMP/statewall.yaml"
	fi
	in_client curl -sS -o /dev/null --max-time 3 "http://$SERVER4/" 2>/dev/null || newconn=fail
	wait "$pid" || rc=$?
	((rc == 0)) && zero=$(jq '[.intervals[].sum.bytes | select(. == 0)] | length' "$j")
	if ((rc == 0)); then
		DET="iperf3 ran on, $zero empty seconds; new conn: $newconn"
	else
		DET="iperf3 exit $rc; new conn: $newconn"
	fi
	[[ -n $why ]] && DET="$DET; says: $(head -c 90 <<<"$why")"
	if [[ $refused != yes ]]; then
		OUT=not-refused
		DET="reload $refused; $DET"
	elif ((rc != 0 || zero != 0)) || [[ $newconn != ok ]]; then
		OUT=traffic-cut
	else
		OUT=ok
	fi
}

NOHELPER_SET=0
case_nohelper() { # the helper cases' data connections, under nohelper.rules
	if ((NOHELPER_SET == 0)); then
		NOHELPER_SET=1
		switch_to nohelper || {
			OUT=switch-failed
			DET="could not load nohelper.rules"
			return
		}
	fi
	case_ftp "$@"
}

case_shutdown() {
	local ns left=() attached=()
	if [[ $SIDE == statewall ]]; then
		if ! daemon_alive; then
			OUT=daemon-dead
			DET="the daemon was not running"
		elif sw_stop; then
			OUT=ok
			DET="SIGTERM: exit 0"
		else
			OUT=unclean-exit
			DET="SIGTERM: exit $SW_EXIT"
		fi
	else
		OUT=ok
		DET="lab down"
	fi
	for ns in "$CLIENT" "$GW" "$SERVER"; do
		xdp_on "$ns" && attached+=("$ns")
	done
	teardown_lab "$LAB"
	for ns in "$CLIENT" "$GW" "$SERVER"; do
		[[ -e /run/netns/$ns ]] && left+=("$ns")
	done
	if ((${#attached[@]} > 0)); then
		OUT=xdp-left
		DET="$DET; XDP still attached in ${attached[*]}"
	elif ((${#left[@]} > 0)); then
		OUT=netns-left
		DET="$DET; namespaces left: ${left[*]}"
	else
		DET="$DET; no XDP, no namespace"
	fi
}

run_case() {
	case $1 in
	http4-80) case_http "http://$SERVER4/" ;;
	http4-8080) case_http "http://$SERVER4:8080/" ;;
	http6-80) case_http "http://[$SERVER6]/" ;;
	http6-8080) case_http "http://[$SERVER6]:8080/" ;;
	ping4) case_ping -4 "$SERVER4" ;;
	ping6) case_ping -6 "$SERVER6" ;;
	ftp-epsv-helper) case_ftp ;;
	ftp-pasv-helper) case_ftp --disable-epsv ;;
	ftp-eprt-helper) case_ftp --ftp-port - ;;
	ftp-port-helper) case_ftp --ftp-port - --disable-eprt ;;
	iperf3-tcp) case_iperf_tcp ;;
	iperf3-udp) case_iperf_udp ;;
	reload) case_reload ;;
	bad-config-reload) case_bad_reload ;;
	ftp-epsv-nohelper) case_nohelper ;;
	ftp-eprt-nohelper) case_nohelper --ftp-port - ;;
	shutdown) case_shutdown ;;
	*) die "no case $1" ;;
	esac
}

declare -A RES DETAIL SECS
run_side() {
	local side=$1 c t0
	SETUP_ERR=''
	NOHELPER_SET=0
	echo
	echo "test-live: $side side ($(if [[ $side == kernel ]]; then echo "bridge + br_netfilter + iptables-legacy"; else echo "statewall run, $BIN"; fi))"
	if ! side_up "$side"; then
		echo "test-live: $side: $SETUP_ERR" >&2
		for c in "${cases[@]}"; do
			RES[$side,$c]=setup-failed
			DETAIL[$side,$c]=$SETUP_ERR
			SECS[$side,$c]=0
		done
		teardown_lab "$LAB"
		return
	fi
	if [[ $side == statewall ]]; then
		grep -m2 -i 'copy mode\|zero-copy\|XDP' "$TMP/statewall.log" | sed 's/^/  daemon: /'
	fi
	for c in "${cases[@]}"; do
		t0=$SECONDS
		OUT='' DET=''
		if [[ $side == statewall && $c != shutdown ]] && ! daemon_alive; then
			OUT=daemon-dead
			DET="statewall run is not running"
		else
			run_case "$c"
			if [[ $side == statewall && $c != shutdown ]] && ! daemon_alive; then
				DET="the daemon exited during the case ($OUT: $DET)"
				OUT=daemon-died
			fi
		fi
		RES[$side,$c]=$OUT
		DETAIL[$side,$c]=$DET
		SECS[$side,$c]=$((SECONDS - t0))
		printf '  %-18s %-14s %s (%ss)\n' "$c" "$OUT" "$DET" "${SECS[$side,$c]}"
	done
}

for s in "${sides[@]}"; do
	run_side "$s"
done

# ---------------------------------------------------------------- the table

passed=0
failed=0
echo
printf '%-18s %-8s %-18s %-18s %s\n' case expected kernel statewall result
for c in "${cases[@]}"; do
	k=${RES[kernel,$c]:--}
	s=${RES[statewall,$c]:--}
	ok=1
	if [[ ${sides[*]} == *kernel* && $k != "${EXPECT[$c]}" ]]; then ok=0; fi
	if [[ ${sides[*]} == *statewall* ]]; then
		if [[ ${sides[*]} == *kernel* ]]; then
			[[ $s == "$k" ]] || ok=0
		else
			[[ $s == "${EXPECT[$c]}" ]] || ok=0
		fi
	fi
	if ((ok)); then
		passed=$((passed + 1))
		verdict=PASS
	else
		failed=$((failed + 1))
		verdict=FAIL
	fi
	printf '%-18s %-8s %-18s %-18s %s\n' "$c" "${EXPECT[$c]}" "$k" "$s" "$verdict"
done
# What each side saw, for the cases that failed.
for c in "${cases[@]}"; do
	k=${RES[kernel,$c]:--}
	s=${RES[statewall,$c]:--}
	[[ $k == "${EXPECT[$c]}" && ($s == "$k" || $s == -) ]] && continue
	[[ $k == - && $s == "${EXPECT[$c]}" ]] && continue
	echo "  $c: kernel: ${DETAIL[kernel,$c]:--}; statewall: ${DETAIL[statewall,$c]:--}"
done
if ((failed > 0)) && [[ -s $TMP/statewall.log ]]; then
	echo
	echo "test-live: the statewall daemon's log (last 20 lines):"
	tail -n 20 "$TMP/statewall.log" | sed 's/^/  /'
fi
echo
echo "test-live: $((SECONDS - START))s"
echo "$passed passed, $failed failed"
((failed == 0))
