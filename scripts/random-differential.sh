#!/usr/bin/env bash
# The long run of random differential testing (issue 13, item 6): seeded random scenarios
# (scripts/swlab/random_scenarios.py) made in a scratch directory, the kernel's answers
# recorded in the bridge lab (`swlab kernel`), then every one replayed through the engine
# (`cargo test ... every_random_scenario` with STATEWALL_RANDOM_SCENARIOS) and compared
# packet by packet. The suite's own 200 are tests/scenarios-random/ (seeds 1..200); a long
# run takes other seeds.
#
#   scripts/random-differential.sh [--first N] [--count N] [--jobs N] [--keep DIR]
#
# --first (default 1001) and --count (default 1000) choose the seeds; --jobs the labs run
# side by side (default 2); --keep DIR keeps the scenarios (else a temporary directory is
# removed). Needs root. The last line says how many scenarios and packets agreed; exits 1 on
# any disagreement (the test's report names each scenario, packet, kernel and engine answer).
set -euo pipefail

cd "$(dirname "$0")/.."
PROG=random-differential
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh

first=1001 count=1000 jobs=2 keep=
while (($#)); do
	case $1 in
	--first) need "$@" && first=$2 && shift ;;
	--count) need "$@" && count=$2 && shift ;;
	--jobs) need "$@" && jobs=$2 && shift ;;
	--keep) need "$@" && keep=$2 && shift ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown option $1 (try --help)" ;;
	esac
	shift
done
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, iptables)"
need_cmds ip iptables-legacy-restore ip6tables-legacy-restore tcpdump ethtool "$PY" cargo

if [[ -n $keep ]]; then
	dir=$keep
	mkdir -p "$dir"
else
	dir=$(mktemp -d /tmp/sw-random.XXXXXX)
	trap 'rm -rf "$dir"' EXIT
fi
start=$SECONDS
"$PY" scripts/swlab random --first "$first" --count "$count" --out "$dir"
"$PY" scripts/swlab kernel "$dir"/rand-* --jobs "$jobs" >"$dir/kernel.log" 2>&1 ||
	die "the kernel lab failed: $(tail -3 "$dir/kernel.log")"
out=$(STATEWALL_RANDOM_SCENARIOS=$dir cargo test -q -p statewall-engine --test kernel_scenarios \
	every_random_scenario -- --nocapture 2>&1) || {
	printf '%s\n' "$out" | grep -v '^test \|^running\|^$' | tail -40
	die "disagreements (above); the scenarios are in $dir${keep:+ (kept)}"
}
line=$(printf '%s\n' "$out" | grep 'replayed' || true)
echo "$PROG: seeds $first..$((first + count - 1)): $line ($((SECONDS - start)) s)"
