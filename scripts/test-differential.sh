#!/usr/bin/env bash
# The live kernel check of the differential scenarios: each tests/scenarios/*/packets.pcapng,
# tests/scenarios-fragments/*/ and tests/scenarios-random/*/ replayed, byte for byte, into the Linux
# kernel (`scripts/swlab kernel`: network namespaces, a bridge, br_netfilter, iptables-legacy;
# tests/scenarios/README.md), whose fresh answers must equal the committed kernel.jsonl (and
# the LOG lines the committed kernel-log.txt, where a scenario logs). A kernel that changed behaviour fails here; nothing
# is re-recorded (that is `scripts/swlab kernel DIR`, by hand, see the README).
#
#   scripts/test-differential.sh [tests/scenarios/NAME ...]     (default: all of them, both
#                                                               directories)
#
# statewall against the committed answers is a cargo test, no root needed:
# `cargo test -p statewall-engine --test kernel_scenarios`.
#
# Needs root; as another user it says it skipped and exits 0. The last line is "N passed,
# N failed"; exits 1 when a scenario's answers differ or its lab run failed.
set -euo pipefail

cd "$(dirname "$0")/.."
PROG=test-differential
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
START=$SECONDS

dirs=()
for a in "$@"; do
	case $a in
	-h | --help)
		usage
		exit 0
		;;
	-*) die "unknown option $a (try --help)" ;;
	*) dirs+=("${a%/}") ;;
	esac
done
if ((${#dirs[@]} == 0)); then
	# tests/scenarios-fragments/: the IP fragment scenarios, kept apart until the engine
	# reassembles (their README), and tests/scenarios-random/, the seeded random ones,
	# checked against the live kernel all the same.
	for d in tests/scenarios/*/ tests/scenarios-fragments/*/ tests/scenarios-random/*/; do
		[[ -d $d ]] && dirs+=("${d%/}")
	done
fi
for d in "${dirs[@]}"; do
	[[ -f $d/packets.pcapng && (-f $d/rules.iptables || -f $d/rules.nft) ]] ||
		die "$d is not a scenario (packets.pcapng, rules.iptables or rules.nft)"
done

if [[ $(id -u) -ne 0 ]]; then
	echo "$PROG: skipped: the kernel lab needs root (network namespaces, iptables);" \
		"statewall's side is cargo test -p statewall-engine --test kernel_scenarios"
	exit 0
fi
need_cmds ip iptables-legacy-restore ip6tables-legacy-restore tcpdump ethtool "$PY"
probe=swdprobe$$
ip netns add "$probe" 2>/dev/null || die "cannot create a network namespace (ip netns add)"
ip netns del "$probe"

TMP=$(mktemp -d /tmp/sw-diff.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

echo "$PROG: ${#dirs[@]} scenario(s) through the kernel lab"
"$PY" "$SWLAB" kernel --out "$TMP/live" "${dirs[@]}" 2>"$TMP/live.log" || true
# The lab's own complaints (a run it did not trust, a lab that failed), not its progress.
grep -v ' -> ' "$TMP/live.log" || true

passed=0
failed=0
failures=()
for d in "${dirs[@]}"; do
	name=$(basename "$d")
	why=''
	if [[ ! -f $d/kernel.jsonl ]]; then
		why="no kernel.jsonl (record it: $PY scripts/swlab kernel $d)"
	elif [[ ! -f $TMP/live/$name.kernel.jsonl ]]; then
		why="the kernel lab did not produce answers (see above)"
	elif ! cmp -s "$d/kernel.jsonl" "$TMP/live/$name.kernel.jsonl"; then
		why="the kernel now answers differently from $d/kernel.jsonl (- recorded, + live):"
	elif [[ -f $d/kernel-log.txt ]] && ! cmp -s "$d/kernel-log.txt" "$TMP/live/$name.kernel-log.txt"; then
		why="the kernel now logs differently from $d/kernel-log.txt (- recorded, + live):"
	fi
	if [[ -z $why ]]; then
		passed=$((passed + 1))
		echo "  PASS $name ($(wc -l <"$d/kernel.jsonl") packets)"
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "  FAIL $name: $why"
		if [[ -f $d/kernel.jsonl && -f $TMP/live/$name.kernel.jsonl ]]; then
			diff -u "$d/kernel.jsonl" "$TMP/live/$name.kernel.jsonl" | tail -n +3 | sed 's/^/    /' || true
		fi
		if [[ -f $d/kernel-log.txt && -f $TMP/live/$name.kernel-log.txt ]]; then
			diff -u "$d/kernel-log.txt" "$TMP/live/$name.kernel-log.txt" | tail -n +3 | sed 's/^/    /' || true
		fi
	fi
done

printf '\n'
if ((failed)); then
	echo "failed scenarios:"
	printf '  %s\n' "${failures[@]}"
fi
echo "$PROG: $((SECONDS - START))s"
echo "$passed passed, $failed failed"
((failed == 0))
