#!/usr/bin/env bash
# The differential suite: every scenario of tests/scenarios/ through statewall, compared packet
# by packet (ctstate and verdict) with what the Linux kernel decided for the same packets.
#
#   scripts/test-differential.sh [--recorded|--live] [tests/scenarios/NAME ...]
#
# --recorded  compare with the kernel answers recorded in tests/scenarios/*/kernel.jsonl.
# --live      first replay each scenario's packets.pcapng into the kernel lab
#             (scripts/scenarios.py kernel: network namespaces, a bridge, br_netfilter,
#             iptables-legacy) and require the kernel's answers to equal the recorded ones
#             (a kernel that changed behaviour fails here), then compare statewall with them.
# Default: --live when running as root and the lab's tools are present, else --recorded.
#
# Per scenario: statewall import-iptables --sysctl sysctl.conf --helpers helpers
# rules.iptables, statewall check, statewall replay --pcap packets.pcapng, then a table of
# every packet (kernel vs statewall, differences marked <<). Last line: "N passed, N failed";
# exits 1 when any scenario disagrees. Uses ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/
# statewall}: run `cargo build --release` first.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=/usr/bin/python3
BIN=${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall}
START=$SECONDS

mode=auto
dirs=()
for a in "$@"; do
	case $a in
	--recorded) mode=recorded ;;
	--live) mode=live ;;
	-h | --help)
		sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "test-differential: unknown option $a" >&2
		exit 2
		;;
	*) dirs+=("${a%/}") ;;
	esac
done
if ((${#dirs[@]} == 0)); then
	for d in tests/scenarios/*/; do
		dirs+=("${d%/}")
	done
fi
for d in "${dirs[@]}"; do
	[[ -f $d/packets.pcapng && -f $d/rules.iptables ]] || {
		echo "test-differential: $d is not a scenario (packets.pcapng, rules.iptables)" >&2
		exit 2
	}
done

lab_usable() {
	[[ $(id -u) -eq 0 ]] || return 1
	local t
	for t in ip iptables-legacy-restore ip6tables-legacy-restore tcpdump ethtool "$PY"; do
		command -v "$t" >/dev/null 2>&1 || return 1
	done
	"$PY" -c 'import socket' 2>/dev/null || return 1
	local probe=swdprobe$$
	ip netns add "$probe" 2>/dev/null || return 1
	ip netns del "$probe"
}
if [[ $mode == auto ]]; then
	if lab_usable; then mode=live; else mode=recorded; fi
fi
if [[ $mode == live ]] && ! lab_usable; then
	echo "test-differential: --live needs root, network namespaces, iptables-legacy, tcpdump and ethtool" >&2
	exit 2
fi

[[ -x $BIN ]] || {
	echo "test-differential: $BIN not found; run cargo build --release first" >&2
	exit 1
}

TMP=$(mktemp -d /tmp/sw-diff.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

echo "test-differential: ${#dirs[@]} scenario(s), mode $mode"

declare -A live_bad=()
if [[ $mode == live ]]; then
	t0=$SECONDS
	"$PY" scripts/scenarios.py kernel --out "$TMP/live" "${dirs[@]}" 2>"$TMP/live.log" || true
	grep -v ' -> ' "$TMP/live.log" || true
	for d in "${dirs[@]}"; do
		name=$(basename "$d")
		if [[ ! -f $TMP/live/$name.kernel.jsonl ]]; then
			live_bad[$name]="the kernel lab did not produce answers"
		elif ! cmp -s "$d/kernel.jsonl" "$TMP/live/$name.kernel.jsonl"; then
			live_bad[$name]="the kernel now answers differently from $d/kernel.jsonl"
			echo "test-differential: $name: kernel answers changed (- recorded, + live):"
			diff -u "$d/kernel.jsonl" "$TMP/live/$name.kernel.jsonl" | tail -n +3 || true
		fi
	done
	echo "test-differential: live kernel run took $((SECONDS - t0))s"
fi

passed=0
failed=0
failures=()
for d in "${dirs[@]}"; do
	name=$(basename "$d")
	printf '\n=== %s\n' "$name"
	sed -n '1s/^# scenario [^:]*: //p' "$d/rules.iptables"
	fail=0
	if [[ -n ${live_bad[$name]:-} ]]; then
		echo "FAIL (live): ${live_bad[$name]}"
		fail=1
	fi
	if [[ ! -f $d/kernel.jsonl ]]; then
		echo "FAIL: no kernel.jsonl (record it: scripts/scenarios.py kernel $d)"
		failed=$((failed + 1))
		failures+=("$name")
		continue
	fi
	args=()
	[[ -f $d/sysctl.conf ]] && args+=(--sysctl "$d/sysctl.conf")
	[[ -f $d/helpers ]] && args+=(--helpers "$d/helpers")
	yaml=$TMP/$name.yaml
	if ! "$BIN" import-iptables "${args[@]}" "$d/rules.iptables" >"$yaml" 2>"$TMP/$name.err"; then
		echo "FAIL: statewall import-iptables rejected $d/rules.iptables:"
		sed 's/^/    /' "$TMP/$name.err"
		fail=1
	elif ! "$BIN" check "$yaml" >"$TMP/$name.check" 2>&1; then
		echo "FAIL: statewall check rejected the imported ruleset:"
		sed 's/^/    /' "$TMP/$name.check"
		fail=1
	elif ! "$BIN" replay --config "$yaml" --pcap "$d/packets.pcapng" \
		>"$TMP/$name.jsonl" 2>"$TMP/$name.err"; then
		echo "FAIL: statewall replay failed:"
		sed 's/^/    /' "$TMP/$name.err"
		fail=1
	elif ! "$PY" scripts/verdicts.py compare "$d/kernel.jsonl" "$TMP/$name.jsonl" \
		--capture "$d/packets.pcapng" --all; then
		fail=1
	fi
	if ((fail)); then
		failed=$((failed + 1))
		failures+=("$name")
		echo "--- FAIL $name"
	else
		passed=$((passed + 1))
		echo "--- PASS $name"
	fi
done

printf '\n'
if ((failed)); then
	echo "failed scenarios:"
	printf '  %s\n' "${failures[@]}"
fi
echo "test-differential: mode $mode, $((SECONDS - START))s"
echo "$passed passed, $failed failed"
((failed == 0))
