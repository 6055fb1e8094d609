#!/usr/bin/env bash
# Lab test of the systemd service (packaging/statewall.service, docs/systemd.md) without
# systemd as PID 1: the unit is verified, its sandbox and capabilities are emulated around the
# real daemon (2 workers, AF_XDP, a scripts/lab.sh lab with two queues), and the test plays
# systemd's side of Type=notify (`swlab sd-listen` on a NOTIFY_SOCKET).
#
#   unit-verify      `systemd-analyze verify` passes: the unit with ExecStart= pointing at the
#                    built binary and the man pages it documents generated beside it (and the
#                    installed unit as it is, when the package is installed)
#   unit-syscalls    an strace of the daemon starting, forwarding, serving statewallctl and
#                    --metrics, reloading a good and a bad config and stopping: every system
#                    call in the unit's SystemCallFilter=, every socket family in
#                    RestrictAddressFamilies=, nothing MemoryDenyWriteExecute= refuses
#   as-unit          the daemon as the unit runs it: only the unit's capabilities (bounding,
#                    ambient), no new privileges, LimitMEMLOCK=infinity, the file system
#                    read-only but for fresh /run/statewall and /run/xdp (ProtectSystem=strict,
#                    ProtectKernelTunables=, RuntimeDirectory=), a pid-only /proc: it forwards,
#                    keeps its state file in /run/statewall and detaches XDP on SIGTERM
#   no-xdp-rundir    the same without a writable /run/xdp (libxdp's lock directory): a second
#                    worker's socket is refused, one worker leaves XDP attached when it stops
#                    (why the unit has RuntimeDirectory=xdp)
#   caps-missing     with each of the unit's capabilities taken away, the daemon exits 1
#                    naming that one, having attached nothing
#   caps-memlock     the unit's capabilities and an 8 MiB RLIMIT_MEMLOCK: exit 1 naming
#                    CAP_IPC_LOCK and the limit
#   notify           READY=1 (from the daemon's pid, forwarding works the moment it arrives),
#                    STATUS= with generation, workers and occupancy, WATCHDOG=1 every half
#                    WATCHDOG_USEC, RELOADING=1 + MONOTONIC_USEC then READY=1 around SIGHUP
#                    (an accepted and a rejected config, STATUS= saying which), STOPPING=1 on
#                    SIGTERM, exit 0
#   journal-levels   that daemon's log, written with JOURNAL_STREAM naming it: every line has a
#                    syslog priority prefix, at the right level
#   watchdog-stall   one worker stopped (ptrace, `swlab stall-thread`) for 3 s: no WATCHDOG=1
#                    while it is, STATUS= and the log name it, pings resume when it goes on
#   watchdog-pid     WATCHDOG_PID naming another process: READY=1 but no WATCHDOG=1
#
#   scripts/test-systemd.sh [--keep]
#
# Needs root. Uses ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall} and statewallctl
# beside it; --keep leaves the work directory (logs, notifications, strace) in /tmp. The last
# line is "N passed, N failed" (exit 1 on a failure).
#
# `A && B || fail ...` is meant throughout: fail only records why the case failed.
# shellcheck disable=SC2015
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=test-systemd
# shellcheck source=scripts/lib/labtest.sh
. scripts/lib/labtest.sh

BIN=${STATEWALL:-$RELEASE/statewall}
[[ $BIN == /* ]] || BIN=$REPO/$BIN
CTL=$(dirname "$BIN")/statewallctl
UNIT=$REPO/packaging/statewall.service
START=$SECONDS
LAB=sw-sd-$$
CLIENT=$LAB-client GW=$LAB-gw SERVER=$LAB-server
SRV4=10.10.0.3
WORKERS=2

keep_or_help "$@"
need_root "network namespaces, XDP, ptrace"
need_cmds ip jq timeout systemd-analyze strace setpriv unshare prlimit nsenter ping curl man "$PY"
need_bins "$BIN" "$CTL"

TMP=$(mktemp -d /tmp/sw-systemd.XXXXXX)
chmod 755 "$TMP"
LOG=$TMP/statewall.log
DPID='' LPID=''

cleanup() {
	trap - EXIT INT TERM
	stop_pid "$DPID" 5
	stop_pid "$LPID"
	lab_down "$LAB"
	if ((keep)); then echo "$PROG: work directory kept: $TMP"; else rm -rf "$TMP"; fi
}
lab_traps

# Every case starts its own daemon.
daemon_free() { true; }
RESULT_WIDTH=16

# ---------------------------------------------------------------- helpers

cat >"$TMP/gw.yaml" <<'EOF'
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, proto: icmp, icmp_type: echo-request, ctstate: new, action: accept}
    - {in_port: lan, proto: tcp, dport: 80, syn: true, ctstate: new, action: accept}
EOF
sed 's/dport: 80,/dport: [80, 8080],/' "$TMP/gw.yaml" >"$TMP/gw2.yaml"
printf 'forward:\n  policy: drop\n  rules:\n    - {proto: tcp, dprt: 80, action: accept}\n' \
	>"$TMP/bad.yaml"
"$BIN" check "$TMP/gw.yaml" >/dev/null && "$BIN" check "$TMP/gw2.yaml" >/dev/null ||
	die "statewall check of the test rulesets failed"

forwards() { in_client ping -c 1 -W 2 "$SRV4" >/dev/null 2>&1; }
forwarding_within() { # forwarding_within SECONDS: a ping gets through before SECONDS pass
	local end=$((SECONDS + $1))
	while ((SECONDS < end)); do
		in_client ping -c 1 -W 1 "$SRV4" >/dev/null 2>&1 && return 0
		daemon_alive || return 1
	done
	return 1
}
xdp_attached() { ip -n "$GW" link show | grep -c 'prog/xdp'; }
detach_all() { # leave nothing attached for the next case
	local p
	for p in lan wan; do ip -n "$GW" link set dev "$p" xdp off 2>/dev/null; done
	return 0
}
# The unit's capabilities, `CAP_A CAP_B` -> `+a,+b` for setpriv.
unit_caps() { sed -n 's/^CapabilityBoundingSet=//p' "$UNIT" | tail -1; }
setpriv_caps() {
	local c out=''
	for c in "$@"; do
		c=${c#CAP_}
		out+=",+${c,,}"
	done
	echo "-all$out"
}
# Whether this machine lets us raise RLIMIT_MEMLOCK as the unit's LimitMEMLOCK=infinity does
# (systemd, PID 1, can; a container without CAP_SYS_RESOURCE cannot).
MEMLOCK_UNLIMITED=0
prlimit --memlock=unlimited true 2>/dev/null && MEMLOCK_UNLIMITED=1

# run_daemon NAME CAPS-SPEC MEMLOCK SANDBOX [ENV...]: start the daemon in the gateway
# namespace with exactly the capabilities CAPS-SPEC (setpriv's syntax; "" for all of root's),
# RLIMIT_MEMLOCK MEMLOCK ("" to leave it), in the unit's emulated sandbox if SANDBOX is
# "unit" or "unit-no-xdp", with the ENV assignments. Its log is $TMP/NAME.log, its pid DPID.
run_daemon() {
	local name=$1 caps=$2 memlock=$3 sandbox=$4
	shift 4
	local -a cmd=(env "$@" "$BIN" run --config "$TMP/gw.yaml" --workers "$WORKERS" --no-pin)
	LOG=$TMP/$name.log
	if [[ -n $caps ]]; then
		cmd=(setpriv --no-new-privs --inh-caps="$caps" --ambient-caps="$caps"
			--bounding-set="$caps" -- "${cmd[@]}")
	fi
	[[ -n $memlock ]] && cmd=(prlimit --memlock="$memlock" -- "${cmd[@]}")
	if [[ $sandbox == unit* ]]; then
		# The state file and control socket at their defaults, in the sandbox's /run.
		ip netns exec "$GW" unshare -m --propagation private -- \
			bash -c "$(declare -f unit_sandbox); unit_sandbox $sandbox \"\$@\"" sandbox \
			"${cmd[@]}" >"$LOG" 2>&1 &
	else
		ip netns exec "$GW" "${cmd[@]}" --state none --control-socket "$TMP/$name.sock" \
			>"$LOG" 2>&1 &
	fi
	DPID=$!
}

# In a private mount namespace, as systemd sets up the unit's: a fresh /run with only
# /run/statewall (and /run/xdp unless `unit-no-xdp`) writable (RuntimeDirectory=), a procfs
# showing only our processes and no /proc/sys (ProtectProc=invisible, ProcSubset=pid),
# every other mount read-only (ProtectSystem=strict, ProtectKernelTunables=: /sys too); then
# exec the command.
unit_sandbox() {
	local mode=$1 m
	shift
	set -e
	mount -t tmpfs -o mode=0755 tmpfs /run
	mkdir -m 0700 /run/statewall
	mount --bind /run/statewall /run/statewall
	if [[ $mode != unit-no-xdp ]]; then
		mkdir -m 0700 /run/xdp
		mount --bind /run/xdp /run/xdp
	fi
	mount -t proc -o subset=pid,hidepid=invisible proc /proc
	while read -r m; do
		case $m in /run/statewall | /run/xdp | /proc | /proc/* | /dev | /dev/*) continue ;; esac
		mount -o remount,bind,ro "$m" 2>/dev/null || true
	done < <(awk '{print $5}' /proc/self/mountinfo | sort -u)
	if touch /etc/.sw-rw-probe 2>/dev/null || touch /sys/.sw-rw-probe 2>/dev/null; then
		echo "unit_sandbox: the file system is not read-only" >&2
		exit 3
	fi
	exec "$@"
}

# The daemon exits by itself within 10 s; its status in RC.
wait_exit() {
	RC=0
	wait_for 10 eval "! kill -0 $DPID" || {
		fail "still running"
		stop_pid "$DPID"
	}
	wait "$DPID" || RC=$?
	DPID=''
}
stop_daemon() { # SIGTERM; status in RC
	RC=0
	kill -TERM "$DPID" 2>/dev/null
	wait_exit
}

# The notifications `swlab sd-listen` received ($TMP/NAME.jsonl), from line $2 on.
notes() { tail -n +"${2:-1}" "$TMP/$1.jsonl" 2>/dev/null; }
listen() { # listen NAME: a NOTIFY_SOCKET at $TMP/NAME.notify
	stop_pid "$LPID"
	"$PY" "$SWLAB" sd-listen "$TMP/$1.notify" >"$TMP/$1.jsonl" 2>"$TMP/$1.listen.err" &
	LPID=$!
	wait_for 5 test -S "$TMP/$1.notify" || die "swlab sd-listen did not bind $TMP/$1.notify"
}
has_note() { # has_note NAME JQ-FILTER [FROM-LINE]: a notification matches
	[[ -n $(notes "$1" "${3:-1}" | jq -c "select($2)") ]]
}
lines_of() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }

# ---------------------------------------------------------------- cases

case_unit_verify() {
	local out
	mkdir -p "$TMP/unit" "$TMP/docs"
	"$BIN" --generate-docs "$TMP/docs" >/dev/null && "$CTL" --generate-docs "$TMP/docs" >/dev/null ||
		fail "cannot generate the man pages"
	sed "s|^ExecStart=/usr/bin/statewall |ExecStart=$BIN |" "$UNIT" >"$TMP/unit/statewall.service"
	grep -q "^ExecStart=$BIN run$" "$TMP/unit/statewall.service" || fail "ExecStart= not rewritten"
	out=$(MANPATH=$TMP/docs systemd-analyze verify "$TMP/unit/statewall.service" 2>&1) ||
		fail "systemd-analyze verify: $out"
	[[ -z $out ]] || fail "systemd-analyze verify says: $out"
	DET="verified with ExecStart=$BIN"
	if [[ -x /usr/bin/statewall && -f /lib/systemd/system/statewall.service ]]; then
		out=$(systemd-analyze verify /lib/systemd/system/statewall.service 2>&1) ||
			fail "the installed unit: $out"
		DET+=" and the installed unit"
	fi
}

case_unit_syscalls() {
	local out i spid
	LOG=$TMP/strace-daemon.log
	cp "$TMP/gw.yaml" "$TMP/cfg.yaml"
	ip netns exec "$GW" strace -f -qq -o "$TMP/strace.txt" "$BIN" run --config "$TMP/cfg.yaml" \
		--workers "$WORKERS" --no-pin --state "$TMP/state" --control-socket "$TMP/st.sock" \
		--metrics 127.0.0.1:9187 >"$LOG" 2>&1 &
	spid=$!
	wait_for 30 test -S "$TMP/st.sock" || fail "the daemon did not come up under strace"
	# Signals go to the daemon, strace's child, not to strace.
	DPID=$(pgrep -P "$spid" | head -1)
	[[ -n $DPID ]] || {
		fail "no daemon under strace"
		DPID=$spid
		return
	}
	forwarding_within 10 || fail "no forwarding under strace"
	"$CTL" --socket "$TMP/st.sock" stats >/dev/null && "$CTL" --socket "$TMP/st.sock" conntrack list >/dev/null &&
		"$CTL" --socket "$TMP/st.sock" hist >/dev/null || fail "statewallctl failed"
	ip netns exec "$GW" curl -sf -m 5 http://127.0.0.1:9187/metrics >/dev/null || fail "no metrics"
	for i in gw2 bad; do
		cp "$TMP/$i.yaml" "$TMP/cfg.yaml"
		kill -HUP "$DPID"
		sleep 1
	done
	# strace exits with its tracee's status.
	kill -TERM "$DPID"
	RC=0
	wait "$spid" || RC=$?
	DPID=''
	((RC == 0)) || fail "exit status $RC"
	grep -q 'reload: .* is generation 2' "$LOG" && grep -q 'rejected' "$LOG" ||
		fail "the reloads did not happen: $(tail -n 3 "$LOG")"
	out=$("$PY" "$SWLAB" sd-check-strace "$UNIT" "$TMP/strace.txt") || fail "$(tail -n +3 <<<"$out" | tr '\n' ';')"
	DET="$(head -1 <<<"$out" | cut -d: -f1); $(sed -n 2p <<<"$out")"
	detach_all
}

case_as_unit() {
	local caps extra=() memlock=unlimited
	read -ra caps <<<"$(unit_caps)"
	if ((!MEMLOCK_UNLIMITED)); then
		# RLIMIT_MEMLOCK cannot be raised here: CAP_IPC_LOCK stands in for LimitMEMLOCK=.
		extra=(CAP_IPC_LOCK) memlock=''
	fi
	run_daemon as-unit "$(setpriv_caps "${caps[@]}" "${extra[@]}")" "$memlock" unit
	forwarding_within 20 || fail "does not forward: $(tail -n 2 "$LOG")"
	grep -q 'statewall: running' "$LOG" || fail "no running line"
	grep -q 'control socket /run/statewall/control.sock' "$LOG" || fail "control socket not in /run/statewall"
	# The state file at its default, in the sandbox's /run/statewall.
	nsenter -t "$DPID" -m ls /run/statewall/ 2>/dev/null | grep -qv control.sock ||
		fail "no state file in /run/statewall"
	if grep -q 'systemd:' "$LOG"; then fail "talks of systemd without NOTIFY_SOCKET"; fi
	stop_daemon
	((RC == 0)) || fail "exit status $RC: $(tail -n 2 "$LOG")"
	(($(xdp_attached) == 0)) || fail "XDP left attached"
	detach_all
	DET="capabilities ${caps[*]}"
	if ((MEMLOCK_UNLIMITED)); then
		DET+=", RLIMIT_MEMLOCK unlimited"
	else
		DET+=" + CAP_IPC_LOCK (standing in for LimitMEMLOCK=infinity: no CAP_SYS_RESOURCE here)"
	fi
}

case_no_xdp_rundir() {
	local left
	# Two workers: the second socket on a port shares the first one's program, which libxdp
	# counts under its lock: refused.
	run_daemon no-xdp-rundir "" "" unit-no-xdp
	wait_exit
	((RC == 1)) || fail "2 workers: exit status $RC"
	grep -q "^statewall: worker 1: cannot open AF_XDP .*Read-only file system" "$LOG" ||
		fail "2 workers: $(tail -n 1 "$LOG")"
	detach_all
	# One worker starts, but its program stays attached when it stops.
	local WORKERS=1
	run_daemon no-xdp-rundir-1 "" "" unit-no-xdp
	wait_for 20 grep -q 'statewall: running' "$LOG" || fail "1 worker: $(tail -n 1 "$LOG")"
	stop_daemon
	((RC == 0)) || fail "1 worker: exit status $RC"
	left=$(xdp_attached)
	((left > 0)) || fail "1 worker: XDP detached even so"
	detach_all
	DET="without /run/xdp: a second worker is refused (EROFS); one worker leaves XDP attached on $left port(s)"
}

case_caps_missing() {
	local caps c others o named=()
	read -ra caps <<<"$(unit_caps)"
	for c in "${caps[@]}"; do
		others=()
		for o in "${caps[@]}"; do [[ $o == "$c" ]] || others+=("$o"); done
		run_daemon "no-$c" "$(setpriv_caps "${others[@]}" CAP_IPC_LOCK)" "" plain
		wait_exit
		((RC == 1)) || fail "without $c: exit status $RC"
		grep -q "^statewall: missing capability $c (" "$LOG" ||
			fail "without $c: $(tail -n 1 "$LOG")"
		for o in "${others[@]}"; do
			if grep -q "$o" "$LOG"; then fail "without $c: names $o too"; fi
		done
		(($(xdp_attached) == 0)) || fail "without $c: XDP attached"
		detach_all
		named+=("$c")
	done
	DET="each named alone: ${named[*]}"
}

case_caps_memlock() {
	local caps
	read -ra caps <<<"$(unit_caps)"
	run_daemon memlock "$(setpriv_caps "${caps[@]}")" $((8 << 20)) plain
	wait_exit
	((RC == 1)) || fail "exit status $RC"
	grep -q '^statewall: missing capability CAP_IPC_LOCK (the UMEM is [0-9]* MiB of locked memory and RLIMIT_MEMLOCK allows 8192 KiB' "$LOG" ||
		fail "$(tail -n 1 "$LOG")"
	(($(xdp_attached) == 0)) || fail "XDP attached"
	detach_all
	DET="$(grep -o 'the UMEM is [0-9]* MiB[^;]*' "$LOG")"
}

STATUS_RE='^generation [0-9]+; 2 workers; conntrack [0-9]+/[0-9]+ entries \([0-9]+\.[0-9]%\); [0-9]+ packets in, [0-9]+ out'

case_notify() {
	local n pings t0 t1 from reload_at rel journal
	listen notify
	cp "$TMP/gw.yaml" "$TMP/notify.yaml"
	LOG=$TMP/notify.log
	: >"$LOG"
	# JOURNAL_STREAM names this log file: the daemon writes syslog priorities (journal-levels).
	journal=$(stat -c '%d:%i' "$LOG")
	ip netns exec "$GW" env NOTIFY_SOCKET="$TMP/notify.notify" WATCHDOG_USEC=1000000 \
		JOURNAL_STREAM="$journal" "$BIN" run --config "$TMP/notify.yaml" \
		--workers "$WORKERS" --no-pin --state none --control-socket "$TMP/notify.sock" \
		>>"$LOG" 2>&1 &
	DPID=$!
	wait_for 20 has_note notify '.msg.READY == "1"' || {
		fail "no READY=1: $(tail -n 2 "$LOG")"
		return
	}
	if ! forwards; then
		fail "READY=1 came, but the gateway does not forward yet"
		forwarding_within 5 && fail "(it does a few seconds later)"
	fi
	has_note notify ".msg.READY == \"1\" and .pid == $DPID" || fail "READY=1 not from the daemon's pid"
	notes notify | head -1 | jq -e --arg re "$STATUS_RE" '.msg.STATUS | test($re)' >/dev/null ||
		fail "READY's STATUS: $(notes notify | head -1)"
	[[ $(notes notify | head -1 | jq -r '.msg.STATUS') == "generation 1; "* ]] || fail "not generation 1"
	# Watchdog: every 0.5 s.
	sleep 3
	pings=$(notes notify | jq -s '[.[] | select(.msg.WATCHDOG == "1")] | length')
	((pings >= 5)) || fail "$pings WATCHDOG=1 in 3 s"
	# Reload, accepted.
	from=$(($(lines_of "$TMP/notify.jsonl") + 1))
	cp "$TMP/gw2.yaml" "$TMP/notify.yaml"
	kill -HUP "$DPID"
	wait_for 5 has_note notify '.msg.READY == "1"' "$from" || fail "no READY=1 after the reload"
	rel=$(notes notify "$from" | jq -c 'select(.msg.RELOADING == "1")' | head -1)
	[[ -n $rel ]] || fail "no RELOADING=1"
	reload_at=$(jq -r '.t' <<<"$rel")
	t0=$(jq -r '.msg.MONOTONIC_USEC // "x"' <<<"$rel")
	[[ $t0 =~ ^[0-9]+$ ]] && jq -e -n --argjson u "$t0" --argjson t "$reload_at" \
		'($u / 1e6 - $t) | fabs < 1' >/dev/null || fail "MONOTONIC_USEC=$t0 is not CLOCK_MONOTONIC now ($reload_at s)"
	notes notify "$from" | jq -s -e 'map(select(.msg.RELOADING == "1" or .msg.READY == "1")) |
		(.[0].msg.RELOADING == "1") and (.[1].msg.READY == "1")' >/dev/null ||
		fail "not RELOADING=1 then READY=1"
	has_note notify '.msg.READY == "1" and (.msg.STATUS | test("^generation 2; .*; last reload: .*notify.yaml accepted as generation 2$"))' "$from" ||
		fail "STATUS after the reload: $(notes notify "$from" | jq -c 'select(.msg.READY)')"
	# Reload, rejected.
	from=$(($(lines_of "$TMP/notify.jsonl") + 1))
	cp "$TMP/bad.yaml" "$TMP/notify.yaml"
	kill -HUP "$DPID"
	wait_for 5 has_note notify '.msg.READY == "1"' "$from" || fail "no READY=1 after the rejected reload"
	has_note notify '.msg.RELOADING == "1"' "$from" || fail "no RELOADING=1 before the rejected reload"
	has_note notify '.msg.READY == "1" and (.msg.STATUS | test("^generation 2; .*; last reload: .*notify.yaml rejected \\(.*\\); kept generation 2$"))' "$from" ||
		fail "STATUS after the rejected reload: $(notes notify "$from" | jq -c 'select(.msg.READY)')"
	# Periodic STATUS with the traffic counted.
	in_client ping -c 3 -i 0.2 -W 1 "$SRV4" >/dev/null || fail "no forwarding after the reloads"
	from=$(($(lines_of "$TMP/notify.jsonl") + 1))
	wait_for 8 has_note notify '(.msg.STATUS // "") | test("conntrack [1-9][0-9]*/.* [1-9][0-9]* packets in")' "$from" ||
		fail "no STATUS update with the pings counted"
	# Stop.
	from=$(($(lines_of "$TMP/notify.jsonl") + 1))
	stop_daemon
	((RC == 0)) || fail "exit status $RC"
	wait_for 2 has_note notify '.msg.STOPPING == "1" and .msg.STATUS == "stopping (SIGTERM)"' "$from" ||
		fail "no STOPPING=1"
	t1=$(notes notify | jq -s '[.[] | select(.msg.WATCHDOG == "1") | .t] | (.[-1] - .[0]) / (length - 1) * 1000 | floor')
	n=$(lines_of "$TMP/notify.jsonl")
	DET="$n notifications; WATCHDOG=1 every ${t1} ms; reloads: accepted, rejected; STOPPING=1"
	detach_all
}

case_journal_levels() {
	local f=$TMP/notify.log bad
	[[ -s $f ]] || {
		fail "no log from the notify case"
		return
	}
	bad=$(grep -vnE '^<[3467]>' "$f" | head -3)
	[[ -z $bad ]] || fail "lines without a priority: $bad"
	grep -qx '<6>statewall: running .*' "$f" || fail "no <6> running line"
	grep -qE '^<6>statewall: worker 0, port lan: ' "$f" || fail "no <6> port line"
	grep -qE '^<6>statewall: reload: .* is generation 2 \(was 1\)$' "$f" || fail "no <6> reload line"
	grep -qE '^<4>statewall: reload: .* rejected \(.*\); keeping generation 2$' "$f" ||
		fail "the rejected reload is not <4>"
	grep -qE '^<4>.*notify\.yaml:[0-9]+:[0-9]+' "$f" ||
		fail "the config's diagnostics are not <4>"
	grep -qx '<6>statewall: SIGTERM received; stopping' "$f" || fail "no <6> SIGTERM line"
	grep -qx '<7>statewall: systemd: ready; watchdog every 500 ms while every worker makes progress' "$f" ||
		fail "no <7> systemd line"
	# A log without JOURNAL_STREAM (as-unit's) has none.
	if grep -qE '^<[0-7]>' "$TMP/as-unit.log" 2>/dev/null; then fail "prefixes without the journal"; fi
	DET="$(grep -c . "$f") lines: $(grep -oE '^<[0-9]>' "$f" | sort | uniq -c | awk '{printf "%s x%s ", $2, $1}')"
}

case_watchdog_stall() {
	local stalled released during after before
	listen stall
	run_daemon stall "" "" plain NOTIFY_SOCKET="$TMP/stall.notify" WATCHDOG_USEC=1000000
	wait_for 20 has_note stall '.msg.READY == "1"' || {
		fail "no READY=1: $(tail -n 2 "$LOG")"
		return
	}
	sleep 1.5
	"$PY" "$SWLAB" stall-thread "$DPID" sw-worker-1 3 >"$TMP/stall.out" 2>&1 &
	local spid=$!
	wait_for 5 grep -q '^stalled' "$TMP/stall.out" || fail "could not stall worker 1: $(cat "$TMP/stall.out")"
	wait "$spid" || fail "stall-thread: $(cat "$TMP/stall.out")"
	sleep 2
	# The listener's times are CLOCK_MONOTONIC: take the stall window from its notifications,
	# the STATUS= that names worker 1 and the first one that does not any more.
	stalled=$(notes stall | jq -s '[.[] | select((.msg.STATUS // "") | test("; worker 1 made no progress"))][0].t // empty')
	released=$(notes stall | jq -s --argjson s "${stalled:-0}" \
		'[.[] | select(.t > $s and (.msg.STATUS // "") != "" and ((.msg.STATUS | test("made no progress")) | not))][0].t // empty')
	[[ -n $stalled ]] || fail "no STATUS= names worker 1"
	[[ -n $released ]] || fail "no STATUS= after the stall without it"
	if [[ -n $stalled && -n $released ]]; then
		during=$(notes stall | jq -s --argjson a "$stalled" --argjson b "$released" \
			'[.[] | select(.t >= $a and .t < $b and .msg.WATCHDOG == "1")] | length')
		after=$(notes stall | jq -s --argjson b "$released" \
			'[.[] | select(.t >= $b and .t < $b + 1.6 and .msg.WATCHDOG == "1")] | length')
		before=$(notes stall | jq -s --argjson a "$stalled" \
			'[.[] | select(.t >= $a - 1.6 and .t < $a and .msg.WATCHDOG == "1")] | length')
		((during == 0)) || fail "$during WATCHDOG=1 while worker 1 was stopped"
		((after >= 2)) || fail "$after WATCHDOG=1 in the 1.5 s after it went on"
		((before >= 2)) || fail "$before WATCHDOG=1 in the 1.5 s before the stall"
		awk -v a="$stalled" -v b="$released" 'BEGIN { d = b - a; exit !(d > 1.5 && d < 4.5) }' ||
			fail "the stall lasted $(awk -v a="$stalled" -v b="$released" 'BEGIN{print b-a}') s, not ~3"
		DET="no ping for $(awk -v a="$stalled" -v b="$released" 'BEGIN{printf "%.1f", b-a}') s; $before before, $after after"
	fi
	grep -q '^statewall: watchdog: worker 1 made no progress in 500 ms; not pinging' "$LOG" ||
		fail "the log does not name worker 1"
	grep -q '^statewall: watchdog: every worker makes progress again' "$LOG" || fail "no recovery line"
	stop_daemon
	((RC == 0)) || fail "exit status $RC"
	detach_all
}

case_watchdog_pid() {
	listen wdpid
	run_daemon wdpid "" "" plain NOTIFY_SOCKET="$TMP/wdpid.notify" WATCHDOG_USEC=500000 WATCHDOG_PID=1
	wait_for 20 has_note wdpid '.msg.READY == "1"' || fail "no READY=1: $(tail -n 2 "$LOG")"
	sleep 2
	if has_note wdpid '.msg.WATCHDOG'; then fail "WATCHDOG=1 for another process's watchdog"; fi
	grep -q 'systemd: ready; no watchdog' "$LOG" || fail "the log does not say no watchdog"
	stop_daemon
	((RC == 0)) || fail "exit status $RC"
	detach_all
	DET="READY=1, $(lines_of "$TMP/wdpid.jsonl") notification(s), no WATCHDOG=1"
}

# ---------------------------------------------------------------- run

LAB=$LAB LAB_QUEUES=$WORKERS scripts/lab.sh up >"$TMP/lab.log" 2>&1 ||
	die "scripts/lab.sh up failed: $(tail -1 "$TMP/lab.log")"
echo "$PROG: lab $LAB (2 queues), $BIN run --workers $WORKERS"
for c in unit-verify unit-syscalls as-unit no-xdp-rundir caps-missing caps-memlock notify \
	journal-levels watchdog-stall watchdog-pid; do
	check "$c"
	stop_pid "$DPID" 5
	DPID=''
done
finish 15
