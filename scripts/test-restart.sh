#!/usr/bin/env bash
# Lab test of the state file (`statewall run --state PATH`, issue 12): the connection table
# outlives the process. A ruleset that accepts NEW TCP only on a SYN (so a connection whose
# entry is lost is never picked up again mid-stream, as nf_conntrack_tcp_loose would) carries
# live traffic while the daemon is stopped by its PID and started again on the same state
# file:
#   - 100 stateful TCP connections from statewall-pktgen (data both ways, no retransmission:
#     a segment the gateway drops is simply lost),
#   - an iperf3 -R stream (the server sends: after the restart the first segment arrives
#     from the wan side, in the reply direction),
#   - a passive (PASV) FTP download through the FTP helper, paced by the server so that it
#     is in progress across the restart,
#   - a second FTP session that sends PASV before the restart and opens the data connection
#     only after it: admitted (as RELATED) only by the helper's expectation, restored from
#     the file.
#
#   kill9           kill -9, restart with the same config and workers (2)
#   sigterm         SIGTERM, restart (the clean stop's CRC is checked at start)
#   workers-2to1    SIGTERM, restart with --workers 1: entries re-sharded into one shard
#   workers-1to2    kill -9 of the 1-worker daemon, restart with --workers 2: the crashed
#                   file's entries re-sharded by owner into two shards
#   corrupt         SIGTERM, one header byte flipped: the daemon refuses the file (header
#                   checksum), keeps it as PATH.rejected, starts empty and says so
#   version         SIGTERM, layout version 3 written with a correct header CRC: refused
#                   with the layout-version message, starts empty
#
# A surviving case requires: the restore line in the daemon's log (clean stop or not, as the
# signal says) with at least the live connections restored, `statewallctl conntrack count`
# right after the restart at least the live connections, every one of them in the new
# table, the expectation restored and the data connection it admits downloading a file
# intact; afterwards no connection reset (pktgen: 100 SYNs, 100 established, 0 failed, none
# reopened; iperf3 exit 0; curl exit 0), the FTP file's md5 equal to the source's, the
# gaps short (the daemon's downtime, from the signal until its control socket answers, is
# measured and printed with the gap each stream saw), and the restarted daemon saw no packet
# as NEW or INVALID and dropped none. A refused case requires the message, PATH.rejected
# holding the tampered file, an empty table, and that the connections did NOT survive (the
# new daemon drops their packets, none of them enters the table, the FTP download stalls,
# the data connection after PASV times out):
# the proof that the surviving cases can fail.
#
# Topology: scripts/lab.sh (LAB=swrs$$, LAB_QUEUES=2 so that a daemon can run 2 workers);
# statewall-pktgen gets a port pair of its own (ports plan/pwan, a second forwarding pair),
# behind a bridge namespace: an AF_XDP generator only receives on the queue it binds, while
# the daemon transmits a flow's packets on its owner's queue. The hosts send on one queue
# (ethtool -L tx 1), so a 1-worker daemon sees everything; a 2-worker one hands half of the
# flows to worker 1.
#
#   scripts/test-restart.sh [--keep]
#
# Needs root. Uses ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall}, its
# statewallctl and statewall-pktgen alongside; --keep leaves the work directory (daemon log,
# reports) in /tmp. The last line is "N passed, N failed" (exit 1 on a failure).
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-restart
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
CTL=${STATEWALLCTL:-$(dirname "$BIN")/statewallctl}
PKTGEN=${STATEWALL_PKTGEN:-$(dirname "$BIN")/statewall-pktgen}
START=$SECONDS
LAB=swrs$$
CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server
PC=$LAB-pc PS=$LAB-ps PSW=$LAB-psw # pktgen's client and server, and their bridges
SERVER4=10.10.0.3
NICE="nice -n -10" # as scripts/test-pktgen.sh: a build alongside must not starve the gateway
# The traffic of each case: DUR seconds; the restart comes once everything is established
# and has run for a moment, about 1.5 s in.
DUR=5
PG_FLOWS=100
PG_RATE=2000 # data segments/s over the 100 connections
PG_DPORT=7000
FTP_BYTES=$((6 << 20))
FTP_RATE=1500000 # bytes/s, vsftpd's anon_max_rate: the download takes about 4 s
IPERF_RATE=50M
# Besides pktgen's: iperf3's control and data, FTP's two controls and one data connection.
LIVE_WANT="$PG_FLOWS 2 3"
LIVE_MIN=$((PG_FLOWS + 5))

keep_or_help "$@"
need_root "network namespaces, XDP"
need_cmds ip jq curl vsftpd iperf3 ethtool md5sum timeout nice "$PY"
need_bins "$BIN" "$CTL" "$PKTGEN"

TMP=$(mktemp -d /tmp/sw-restart.XXXXXX)
chmod 755 "$TMP" # vsftpd serves from under it as the ftp user
SOCK=$TMP/control.sock
LOG=$TMP/statewall.log
STATE=$TMP/state
DPID=''
BG=() # traffic and servers started by the cases

cleanup() {
	local p
	trap - EXIT INT TERM
	for p in "${BG[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${BG[@]}"; do wait "$p" 2>/dev/null; done
	stop_pid "$DPID"
	lab_down "$LAB"
	ns_down "$PC" "$PS" "$PSW"
	if ((keep)); then echo "test-restart: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

# ---------------------------------------------------------------- the lab

lab_up() {
	LAB=$LAB LAB_QUEUES=2 scripts/lab.sh up >"$TMP/lab.log" 2>&1 ||
		die "scripts/lab.sh up failed: $(tail -1 "$TMP/lab.log")"
	local ns
	for ns in "$CLIENT" "$SERVER"; do
		# IPv4 only (no router solicitation or MLD report for the daemons to drop: a restarted
		# daemon must drop nothing), and one transmit queue: every frame reaches the gateway
		# on queue 0, which worker 0 polls whatever the worker count.
		nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
		nsx "$ns" ethtool -L eth0 tx 1
	done
	# pktgen's pair: $PC eth0 - brc in $PSW - plan in $GW, and $PS eth0 - brs - pwan.
	ip netns add "$PC"
	ip netns add "$PS"
	ip netns add "$PSW"
	nsx "$PSW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	# Where br_netfilter is loaded, bridged IPv4 would go through iptables in $PSW: not here.
	if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
		nsx "$PSW" sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
	fi
	local side host port br
	for side in c s; do
		host=$LAB-p$side port=plan br=brc
		[[ $side == s ]] && port=pwan br=brs
		nsx "$host" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
		ip link add eth0 netns "$host" type veth peer name "p${side}0" netns "$PSW"
		ip link add "$port" netns "$GW" numtxqueues 2 numrxqueues 2 type veth \
			peer name "${port}0" netns "$PSW" numtxqueues 2 numrxqueues 2
		nsx "$GW" sysctl -qw "net.ipv6.conf.$port.disable_ipv6=1"
		nsx "$PSW" ethtool -L "${port}0" tx 1
		ip -n "$PSW" link add "$br" type bridge
		ip -n "$PSW" link set "p${side}0" master "$br"
		ip -n "$PSW" link set "${port}0" master "$br"
		ip -n "$PSW" link set "p${side}0" up
		ip -n "$PSW" link set "${port}0" up
		ip -n "$PSW" link set "$br" up
		ip -n "$GW" link set "$port" up
		ip -n "$host" link set eth0 up
		ip -n "$host" link set lo up
	done
}

write_ruleset() {
	cat >"$TMP/restart.yaml" <<EOF
# scripts/test-restart.sh: the seed gateway's hygiene with NEW TCP only on a SYN (iptables
# -p tcp --syn -m conntrack --ctstate NEW), so that a connection whose entry was lost is
# never picked up again mid-stream.
ports: {lan: lan, wan: wan, plan: plan, pwan: pwan}
pairs: [[lan, wan], [plan, pwan]]
helpers:
  ftp:
    ports: [21]
forward:
  policy: drop
  rules:
    - ctstate: invalid
      action: drop
    - ctstate: [established, related]
      action: accept
      comment: replies, and the FTP data connections the helper expects
    - in_port: [lan, plan]
      proto: tcp
      dport: [21, 5201-5209, $PG_DPORT]
      tcp_flags: {mask: [fin, syn, rst, ack], comp: [syn]}
      ctstate: new
      action: accept
      comment: FTP control, iperf3, statewall-pktgen; NEW only on a SYN
EOF
	"$BIN" check "$TMP/restart.yaml" >"$TMP/check.log" 2>&1 || {
		cat "$TMP/check.log" >&2
		die "statewall check of the test's ruleset failed"
	}
}

servers_up() {
	mkdir -p "$TMP/pub" "$TMP/empty"
	chmod 755 "$TMP/pub" "$TMP/empty"
	head -c "$FTP_BYTES" /dev/urandom >"$TMP/pub/data.bin"
	head -c $((256 << 10)) /dev/urandom >"$TMP/pub/small.bin"
	chmod 644 "$TMP/pub/data.bin" "$TMP/pub/small.bin"
	DATA_MD5=$(md5sum <"$TMP/pub/data.bin" | cut -d' ' -f1)
	SMALL_MD5=$(md5sum <"$TMP/pub/small.bin" | cut -d' ' -f1)
	# The FTP client whose data connection comes after the restart: PASV, then $GO.pasv
	# made; it waits for $GO, connects to the port the 227 reply gave (connect timeout
	# 2 s), RETR small.bin; "ok MD5" or "error: WHY" in $OUT.
	cat >"$TMP/pasv.py" <<'PY'
import ftplib, hashlib, os, socket, sys, time

go, out = sys.argv[1], sys.argv[2]
try:
    ftp = ftplib.FTP()
    ftp.connect("10.10.0.3", 21, timeout=10)
    ftp.login()
    ftp.voidcmd("TYPE I")
    host, port = ftplib.parse227(ftp.sendcmd("PASV"))
    open(go + ".pasv", "w").close()
    deadline = time.time() + 30
    while not os.path.exists(go):
        if time.time() > deadline:
            raise RuntimeError("never told to go on")
        time.sleep(0.01)
    data = socket.create_connection((host, port), timeout=2)
    ftp.sendcmd("RETR small.bin")
    h = hashlib.md5()
    while chunk := data.recv(65536):
        h.update(chunk)
    data.close()
    ftp.voidresp()
    ftp.quit()
    result = "ok " + h.hexdigest()
except Exception as e:  # noqa: BLE001 - any failure is the answer
    result = f"error: {type(e).__name__}: {e}"
with open(out, "w") as f:
    f.write(result + "\n")
sys.exit(0 if result.startswith("ok") else 1)
PY
	local ftpuser=ftp
	getent passwd ftp >/dev/null || ftpuser=nobody
	sed -e "s|@ROOT@|$TMP/pub|g" -e "s|@EMPTY@|$TMP/empty|g" -e "s|@FTPUSER@|$ftpuser|g" \
		-e "s|@LOG@|$TMP/vsftpd.log|g" scripts/live/vsftpd.conf >"$TMP/vsftpd.conf"
	# The server paces the download (a client-side limit would not: the whole file would sit
	# in the client's socket buffer, the data connection closed, long before the restart).
	echo "anon_max_rate=$FTP_RATE" >>"$TMP/vsftpd.conf"
	ip netns exec "$SERVER" vsftpd "$TMP/vsftpd.conf" >"$TMP/vsftpd.out" 2>&1 &
	BG+=("$!")
	wait_for 10 ns_listening "$SERVER" tcp 21 || die "vsftpd does not listen: $(cat "$TMP/vsftpd.out")"
}

# ---------------------------------------------------------------- the daemon

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Gone, or a zombie not yet reaped (kill -0 still succeeds on those).
exited() {
	[[ ! -e /proc/$1/stat ]] || [[ $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) == Z ]]
}

LOGPOS=0 # the log's line count when the running daemon started: its own lines follow
sw_log() { tail -n "+$((LOGPOS + 1))" "$LOG"; }
sw_ready() { daemon_alive && ctl stats >/dev/null 2>&1; }

# sw_start WORKERS: the daemon on $STATE, until its control socket answers (10 s at most).
sw_start() {
	LOGPOS=$(wc -l <"$LOG")
	echo "=== $(date +%T.%N) statewall run --workers $1" >>"$LOG"
	rm -f "$SOCK"
	$NICE ip netns exec "$GW" "$BIN" run --config "$TMP/restart.yaml" --state "$STATE" \
		--control-socket "$SOCK" --workers "$1" --no-pin >>"$LOG" 2>&1 &
	DPID=$!
	local deadline=$(($(now_ms) + 10000))
	until sw_ready; do
		if ! daemon_alive || (($(now_ms) > deadline)); then return 1; fi
		sleep 0.01
	done
}

# sw_stop SIGNAL: signal the daemon by its PID, wait for it to exit (10 s at most); STOP_RC
# is its exit status.
sw_stop() {
	local deadline=$(($(now_ms) + 10000))
	STOP_RC=''
	kill "-$1" "$DPID"
	# (stderr: bash's "Killed" notice of the job, printed whenever it reaps it)
	{
		until exited "$DPID"; do
			(($(now_ms) < deadline)) || break
			sleep 0.01
		done
		exited "$DPID" || kill -KILL "$DPID"
		wait "$DPID"
		STOP_RC=$?
	} 2>/dev/null
	DPID=''
}

# ---------------------------------------------------------------- the traffic

CASE_N=0
# traffic_start NAME: iperf3 -R (server port $IPORT), the FTP download, pktgen (source ports
# $SPORT..+99), each in the background.
traffic_start() {
	local n=$1
	CASE_N=$((CASE_N + 1))
	IPORT=$((5200 + CASE_N)) SPORT=$((20000 + 100 * CASE_N))
	ip netns exec "$SERVER" iperf3 -s -1 -p "$IPORT" >"$TMP/$n.iperf3-server.log" 2>&1 &
	ISPID=$!
	BG+=("$ISPID")
	wait_for 5 ns_listening "$SERVER" tcp "$IPORT" || return 1
	ip netns exec "$CLIENT" timeout 30 iperf3 -c "$SERVER4" -p "$IPORT" -R -t "$DUR" -i 0.25 \
		-b "$IPERF_RATE" --connect-timeout 3000 -J >"$TMP/$n.iperf3.json" 2>&1 &
	IPID=$!
	ip netns exec "$CLIENT" timeout 30 curl -sS --disable-epsv \
		-o "$TMP/$n.ftp" "ftp://$SERVER4/data.bin" 2>"$TMP/$n.curl.err" &
	FPID=$!
	$NICE timeout 30 "$PKTGEN" --dev "eth0@$PC" --rx-dev "eth0@$PS" --json --mode stateful \
		--src 10.10.1.2 --dst 10.10.1.3 --sport "$SPORT-$((SPORT + PG_FLOWS - 1))" \
		--dport "$PG_DPORT" --flows "$PG_FLOWS" --rate "$PG_RATE" --duration "$DUR" \
		--pkt-size 70 >"$TMP/$n.pktgen.json" 2>"$TMP/$n.pktgen.err" &
	GPID=$!
	ip netns exec "$CLIENT" timeout 40 "$PY" "$TMP/pasv.py" "$TMP/$n.go" "$TMP/$n.pasv-out" \
		>"$TMP/$n.pasv.log" 2>&1 &
	XPID=$!
	BG+=("$IPID" "$FPID" "$GPID" "$XPID")
}

# The daemon's TCP entries, one TSV line each: state, source port, destination port, shard.
ct_tsv() {
	jctl conntrack list -p tcp | jq -r '.data.entries[] |
		[.state, .original.sport, .original.dport, .shard] | @tsv'
}
# live_conns: how many of the case's connections the table holds ESTABLISHED: pktgen's,
# iperf3's (control and data), FTP's (controls, and data from the passive range) as "P I F".
live_conns() {
	ct_tsv | awk -F'\t' -v s="$SPORT" -v n="$PG_FLOWS" -v pg="$PG_DPORT" -v ip="$IPORT" '
		$1 != "ESTABLISHED" { next }
		$3 == pg && $2 >= s && $2 < s + n { p++ }
		$3 == ip { i++ }
		$3 == 21 || ($3 >= 40000 && $3 <= 40099) { f++ }
		END { printf "%d %d %d\n", p, i, f }'
}
ftp_size() { stat -c %s "$1" 2>/dev/null || echo 0; }
all_live() {
	[[ $(live_conns) == "$LIVE_WANT" && -e $TMP/$CASE.go.pasv ]] &&
		(($(ftp_size "$TMP/$CASE.ftp") > 0))
}
running() { kill -0 "$1" 2>/dev/null && ! exited "$1"; }

# wait_pid PID SECONDS: its exit status, or 124 when it is still running after SECONDS
# (then it is stopped).
wait_pid() {
	local deadline=$(($(now_ms) + $2 * 1000))
	while ! exited "$1" && (($(now_ms) < deadline)); do sleep 0.05; done
	if exited "$1"; then
		wait "$1"
		return
	fi
	stop_pid "$1"
	return 124
}

# The longest run of empty intervals in iperf3's report, in ms (TCP's retransmission timer
# backs off while the gateway is down: 0.2, 0.6, 1.4 s after the first loss).
iperf_stall_ms() {
	jq -r '[.intervals[].sum | [.seconds, .bytes]] | reduce .[] as $i ({run: 0, max: 0};
		if $i[1] == 0 then .run += $i[0] | .max = ([.max, .run] | max) else .run = 0 end)
		| .max * 1000 | floor' "$1" 2>/dev/null || echo -1
}

# ---------------------------------------------------------------- cases

# restart_case SIGNAL WORKERS [corrupt|version]: traffic, the daemon stopped with SIGNAL and
# restarted with WORKERS, the state file tampered with in between for a refused case.
restart_case() {
	local sig=$1 workers=$2 tamper=${3:-} t0 t1 t2 before after line restored
	local -a live
	CASE=${FUNCNAME[1]#case_}
	CASE=${CASE//_/-}
	traffic_start "$CASE" || {
		fail "iperf3 -s did not listen"
		return
	}
	if ! wait_for 8 all_live; then
		fail "traffic not established before the restart (pktgen, iperf3, FTP established: $(live_conns); FTP $(ftp_size "$TMP/$CASE.ftp") bytes)"
		return
	fi
	sleep 0.5
	local ftp0
	ftp0=$(ftp_size "$TMP/$CASE.ftp")
	((ftp0 < FTP_BYTES)) && running "$FPID" || fail "the FTP download was not in progress at the restart ($ftp0 bytes)"
	running "$IPID" && running "$GPID" || fail "iperf3 or pktgen ended before the restart"
	local xp
	xp=$(jctl stats | jq -r '.data.total.expectations')
	((xp == 1)) || fail "$xp FTP expectations before the restart (expected 1: the PASV session's)"
	before=$(ctl conntrack count)

	# The restart.
	t0=$(now_ms)
	sw_stop "$sig"
	t1=$(now_ms)
	local want_rc=0
	[[ $sig == KILL ]] && want_rc=137
	[[ $STOP_RC == "$want_rc" ]] || fail "the daemon exited $STOP_RC after SIG$sig (expected $want_rc)"
	[[ -n $tamper ]] && tamper_"$tamper"
	sw_start "$workers" || {
		fail "the daemon did not come back: $(sw_log | grep -v '^===' | tail -3 | tr '\n' ' ')"
		return
	}
	t2=$(now_ms)
	after=$(ctl conntrack count)
	DOWN=$((t2 - t0))
	DET="down $DOWN ms (stop $((t1 - t0)) + start $((t2 - t1))); entries $before -> $after"
	line=$(sw_log | grep -m1 '^statewall: state: ')

	if [[ -n $tamper ]]; then
		refused_checks "$line"
		return
	fi

	# Restored: the log says from where and how, and every live connection is in the table.
	local how='clean stop'
	[[ $sig == KILL ]] && how='not stopped cleanly: every slot checked'
	read -r restored xp < <(sed -n "s|^statewall: state: restored \([0-9]*\) connection(s) and \([0-9]*\) expectation(s) from $STATE ($how) in [0-9]* ms.*|\1 \2|p" <<<"$line")
	[[ -n $restored ]] || fail "no restore line ($how) in the log: ${line:-none}"
	[[ $xp == 1 ]] || fail "restored ${xp:-no} expectations (expected the PASV session's)"
	[[ $line != *corrupt* && $line != *duplicates* && $line != *"no room"* ]] || fail "$line"
	((${restored:-0} >= LIVE_MIN)) || fail "restored ${restored:-0} entries, fewer than the $LIVE_MIN live connections"
	((after >= LIVE_MIN)) || fail "conntrack count $after after the restart, fewer than the $LIVE_MIN live connections"
	read -ra live <<<"$(live_conns)"
	[[ ${live[*]} == "$LIVE_WANT" ]] ||
		fail "ESTABLISHED after the restart: pktgen ${live[0]}/$PG_FLOWS, iperf3 ${live[1]}/2, FTP ${live[2]}/3"
	# The PASV session's data connection, now.
	touch "$TMP/$CASE.go"
	local shards
	shards=$(ct_tsv | awk -F'\t' -v s="$SPORT" -v n="$PG_FLOWS" -v pg="$PG_DPORT" '
		$3 == pg && $2 >= s && $2 < s + n { c[$4]++ }
		END { for (k in c) printf "%s%s:%d", (o++ ? " " : ""), k, c[k] }' | tr ' ' '\n' | sort | tr '\n' ' ')
	shards=${shards% }
	DET+=" (restored $restored; pktgen's by shard ${shards})"
	# Re-sharded by owner: with two workers both shards hold some of pktgen's 100.
	if ((workers == 2)); then
		[[ $shards == 0:* && $shards == *" 1:"* ]] || fail "pktgen's entries by shard: $shards (expected both shards)"
	else
		[[ $shards == "0:$PG_FLOWS" ]] || fail "pktgen's entries by shard: $shards (expected all in shard 0)"
	fi

	survived_checks
}

# After a restore: the traffic runs to its end with nothing reset, the gaps short.
survived_checks() {
	local rc j gap stall
	# pktgen: its duration, then 300 ms of settling.
	wait_pid "$GPID" 15
	rc=$?
	j=$TMP/$CASE.pktgen.json
	if ((rc != 0)) || ! jq -e '.totals' "$j" >/dev/null 2>&1; then
		fail "pktgen exit $rc: $(tail -c 200 "$TMP/$CASE.pktgen.err")"
	else
		local syn est failed retr closed sent recv lost
		read -r syn est failed retr closed sent recv lost < <(jq -r '[.totals.syn_sent,
			.totals.established, .totals.failed_handshakes, .totals.syn_retransmits,
			.totals.closed, .sent, .received, .lost] | @tsv' "$j")
		# A connection reset (an RST reaching either end) would be reopened: another SYN.
		((syn == PG_FLOWS && est == PG_FLOWS && failed == 0 && retr == 0 && closed == 0)) ||
			fail "pktgen: $syn SYNs ($retr retransmitted), $est established, $failed failed, $closed closed (expected $PG_FLOWS, $PG_FLOWS, 0, 0)"
		# Data segments are not retransmitted: what was lost is what was sent while the
		# gateway was down.
		gap=$((lost * 1000 / PG_RATE))
		((gap <= DOWN + 300)) || fail "pktgen lost $lost of $sent segments: a gap of $gap ms, the daemon was down $DOWN ms"
		DET+="; pktgen: $est established, $sent sent, $recv received, $lost lost (gap $gap ms)"
	fi
	# iperf3: exit 0 within its time.
	wait_pid "$IPID" 15
	rc=$?
	j=$TMP/$CASE.iperf3.json
	stall=$(iperf_stall_ms "$j")
	if ((rc != 0)); then
		fail "iperf3 exit $rc: $(jq -r '.error // empty' "$j" 2>/dev/null | head -c 100)"
	else
		# Resumed at the first retransmission after the gateway came back: at most twice the
		# downtime, plus the 200 ms minimum timer and an interval of slack.
		((stall <= 2 * DOWN + 450)) || fail "iperf3 stalled $stall ms (the daemon was down $DOWN ms)"
		DET+="; iperf3: $(jq -r '.end.sum_received.bytes' "$j") bytes, stall $stall ms, $(jq -r '.end.sum_sent.retransmits // 0' "$j") retransmits"
	fi
	stop_pid "$ISPID"
	# FTP: done, intact.
	wait_pid "$FPID" 15
	rc=$?
	local md5
	md5=$(md5sum <"$TMP/$CASE.ftp" 2>/dev/null | cut -d' ' -f1)
	if ((rc != 0)); then
		fail "FTP: curl exit $rc: $(head -c 100 "$TMP/$CASE.curl.err")"
	elif [[ $md5 != "$DATA_MD5" ]]; then
		fail "FTP: md5 $md5 of $(ftp_size "$TMP/$CASE.ftp") bytes, the source's is $DATA_MD5"
	else
		DET+="; FTP md5 ok"
	fi
	# The data connection the restored expectation admitted.
	wait_pid "$XPID" 15
	rc=$?
	if [[ $(cat "$TMP/$CASE.pasv-out" 2>/dev/null) == "ok $SMALL_MD5" ]]; then
		DET+=", expected data connection ok"
	else
		fail "FTP data connection after the restart (PASV before it): exit $rc, $(cat "$TMP/$CASE.pasv-out" 2>/dev/null || tail -c 100 "$TMP/$CASE.pasv.log")"
	fi
	# The restarted daemon knew every packet it saw: none NEW (no connection opened after the
	# restart), none INVALID, none dropped.
	local new inv drop
	read -r new inv drop < <(jctl stats | jq -r '.data.total | [.ctstate.new, .ctstate.invalid,
		.dropped_total] | @tsv')
	((new == 0 && inv == 0 && drop == 0)) ||
		fail "the restarted daemon saw $new packets as NEW, $inv INVALID, dropped $drop: $(jctl stats |
			jq -c '.data.total.dropped | with_entries(select(.value > 0))')"
}

# After a refused file: the message, the file kept aside, an empty table, and the
# connections lost for good (the test can fail).
refused_checks() {
	local line=$1 want xo
	case $tamper in
	corrupt) want="its header checksum does not match: the header is corrupt" ;;
	version) want="it has layout version 3, this statewall reads version 2" ;;
	esac
	[[ $line == "statewall: state: state file $STATE cannot be used: $want"*"(kept as $STATE.rejected); starting with an empty table" ]] ||
		fail "the log says: ${line:-nothing} (expected: cannot be used: $want ... starting with an empty table)"
	[[ -f $STATE.rejected && $(md5sum <"$STATE.rejected" | cut -d' ' -f1) == "$TAMPERED_MD5" ]] ||
		fail "$STATE.rejected is not the tampered file"
	[[ -f $STATE ]] || fail "no new state file"
	local after
	after=$(ctl conntrack count)
	((after == 0)) || fail "$after entries right after the restart (expected an empty table)"
	# The old connections go on sending: their packets are dropped, none enters the table.
	local f0 f1 live drop
	f0=$(ftp_size "$TMP/$CASE.ftp")
	touch "$TMP/$CASE.go" # the PASV session's data connection: no expectation to admit it
	sleep 1.5
	f1=$(ftp_size "$TMP/$CASE.ftp")
	live=$(live_conns)
	drop=$(total dropped_total)
	[[ $live == "0 0 0" ]] || fail "established after the restart (pktgen, iperf3, FTP): $live"
	((drop > 0)) || fail "the restarted daemon dropped nothing"
	((f1 == f0)) && running "$FPID" || fail "the FTP download went on ($f0 -> $f1 bytes)"
	wait_pid "$XPID" 3
	xo=$(cat "$TMP/$CASE.pasv-out" 2>/dev/null)
	[[ $xo == "error: "*"timed out"* ]] || fail "the data connection after PASV: ${xo:-no answer} (expected a timeout)"
	DET+="; refused and empty; 1.5 s later: nothing re-established, $drop packets dropped, FTP stalled at $f1 bytes, the expected data connection timed out"
	# Stop the traffic that cannot finish.
	kill -INT "$GPID" 2>/dev/null
	wait_pid "$GPID" 5
	stop_pid "$IPID"
	stop_pid "$FPID"
	stop_pid "$ISPID"
}

tamper_corrupt() { # one byte of the header (slots per shard), after a clean stop
	"$PY" - "$STATE" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(30)
    b = f.read(1)[0]
    f.seek(30)
    f.write(bytes([b ^ 0xFF]))
EOF
	TAMPERED_MD5=$(md5sum <"$STATE" | cut -d' ' -f1)
}

tamper_version() { # layout version 3 (u32 LE at 8), the header CRC (at 12, over 0..56) right
	"$PY" - "$STATE" <<'EOF' || fail "could not rewrite the header"
import struct, sys, zlib
with open(sys.argv[1], "r+b") as f:
    h = bytearray(f.read(56))
    assert h[:8] == b"SWSTATE\0" and struct.unpack_from("<I", h, 8)[0] == 2, "not a version-2 file"
    h[12:16] = b"\0\0\0\0"
    assert zlib.crc32(bytes(h)) == struct.unpack_from("<I", open(sys.argv[1], "rb").read(16), 12)[0], "the header CRC is not what the test computes"
    struct.pack_into("<I", h, 8, 3)
    struct.pack_into("<I", h, 12, zlib.crc32(bytes(h)))
    f.seek(0)
    f.write(h)
EOF
	TAMPERED_MD5=$(md5sum <"$STATE" | cut -d' ' -f1)
}

case_kill9() { restart_case KILL 2; }
case_sigterm() { restart_case TERM 2; }
case_workers_2to1() { restart_case TERM 1; }
case_workers_1to2() { restart_case KILL 2; }
case_corrupt() { restart_case TERM 2 corrupt; }
case_version() { restart_case TERM 2 version; }

# ---------------------------------------------------------------- run

echo "test-restart: lab $LAB, $BIN run --state $STATE"
lab_up
write_ruleset
servers_up
: >"$LOG"
sw_start 2 || {
	tail -5 "$LOG" >&2
	die "statewall run did not come up"
}
grep -q '^statewall: state: no state file yet; starting with an empty table' "$LOG" ||
	die "the first start did not say it starts empty: $(grep 'state:' "$LOG")"

for c in kill9 sigterm workers-2to1 workers-1to2 corrupt version; do
	check "$c"
done

# The last daemon stops cleanly.
if daemon_alive; then
	sw_stop TERM
	[[ $STOP_RC == 0 ]] || echo "test-restart: the last daemon exited $STOP_RC on SIGTERM" >&2
fi
finish 15
