#!/usr/bin/env bash
# Run the fuzz targets (dataplane/fuzz: libFuzzer through cargo-fuzz) from their seed corpora
# and say what each did. Installs what it needs: rustup's nightly toolchain (minimal profile)
# and cargo-fuzz.
#
#   scripts/fuzz.sh [--minutes N | --seconds N] [--jobs N] [--corpus DIR] [--no-sanitizer]
#                   [TARGET ...]
#
#   TARGET          a target of dataplane/fuzz (`cargo fuzz list`); default: every one
#   --minutes N     each target runs N minutes (default 1)
#   --seconds N     each target runs N seconds (scripts/test.sh: 20, a regression gate)
#   --jobs N        targets run N at a time (default 1; each is one libFuzzer process)
#   --corpus DIR    the working corpora, DIR/TARGET, kept and grown from run to run (a long
#                   campaign); default: a temporary directory, removed at the end
#   --no-sanitizer  build without AddressSanitizer (about twice the executions per second;
#                   Rust's checks still panic on overflow and out-of-bounds)
#
# Each target starts from the committed seeds dataplane/fuzz/seeds/TARGET/ (conntrack save
# files, control requests, ...) and the seeds scripts/lib/fuzz_seeds.py makes from what the
# repository holds (the scenarios' captures and their frames, rulesets, example configs).
# The last lines are a table: target, seconds, executions, executions/s, coverage (libFuzzer's
# cov: and ft:), corpus size, crashes. A crash, a timeout (10 s for one input) or running out
# of memory (2 GiB) fails the target: its input is kept in target/fuzz-crashes/TARGET/ (under
# CARGO_TARGET_DIR when set) and the exit status is 1. Reproduce one with
#   cd dataplane/fuzz && cargo +nightly fuzz run TARGET PATH-TO-INPUT
# and make it a unit test once fixed. Exit status 2: could not set up.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PROG=fuzz
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
load_cargo_env

SECS=60 JOBS=1 CORPUS='' SAN=() TARGETS=()
while (($#)); do
	case $1 in
	--minutes) need "$@" && SECS=$(($2 * 60)) && shift ;;
	--seconds) need "$@" && SECS=$2 && shift ;;
	--jobs) need "$@" && JOBS=$2 && shift ;;
	--corpus) need "$@" && CORPUS=$2 && shift ;;
	--no-sanitizer) SAN=(--sanitizer none) ;;
	-h | --help)
		usage
		exit 0
		;;
	-*) die "unknown option $1 (try --help)" ;;
	*) TARGETS+=("$1") ;;
	esac
	shift
done
[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || die "--minutes/--seconds must be a positive whole number"
[[ $JOBS =~ ^[0-9]+$ && $JOBS -gt 0 ]] || die "--jobs must be a positive whole number"

# ---------------------------------------------------------------- tools

need_cmds rustup cargo "$PY"
if ! rustup toolchain list | grep -q '^nightly'; then
	echo "$PROG: installing rustup's nightly toolchain (cargo-fuzz needs it)"
	rustup toolchain install nightly --profile minimal >/dev/null || die "rustup could not install nightly"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "$PROG: installing cargo-fuzz"
	cargo install cargo-fuzz --locked --quiet || die "cargo install cargo-fuzz failed"
fi

FUZZ=$REPO/dataplane/fuzz
mapfile -t ALL < <(cd "$FUZZ" && cargo +nightly fuzz list)
((${#ALL[@]})) || die "cargo fuzz list found no targets in $FUZZ"
if ((${#TARGETS[@]} == 0)); then
	TARGETS=("${ALL[@]}")
else
	for t in "${TARGETS[@]}"; do
		printf '%s\n' "${ALL[@]}" | grep -qx -- "$t" ||
			die "no fuzz target '$t'; the targets are: ${ALL[*]}"
	done
fi

TMP=$(mktemp -d /tmp/sw-fuzz.XXXXXX)
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'echo "$PROG: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM
[[ -n $CORPUS ]] || CORPUS=$TMP/corpus
mkdir -p "$CORPUS" || die "cannot create $CORPUS"
CORPUS=$(cd "$CORPUS" && pwd)
CRASHES=${CARGO_TARGET_DIR:-target}
[[ $CRASHES == /* ]] || CRASHES=$REPO/$CRASHES
CRASHES=$CRASHES/fuzz-crashes

# ---------------------------------------------------------------- seeds and build

"$PY" scripts/lib/fuzz_seeds.py "$TMP/generated" >"$TMP/seeds.log" 2>&1 ||
	die "scripts/lib/fuzz_seeds.py failed: $(tail -1 "$TMP/seeds.log")"
for t in "${TARGETS[@]}"; do
	mkdir -p "$CORPUS/$t"
	for src in "$FUZZ/seeds/$t" "$TMP/generated/$t"; do
		[[ -d $src ]] && cp -n "$src"/* "$CORPUS/$t/" 2>/dev/null
	done
done

echo "$PROG: building ${#TARGETS[@]} targets (cargo +nightly fuzz build -O ${SAN[*]})"
# fuzz_build [TARGET]: `cargo fuzz build` takes one target, or none for all of them.
fuzz_build() {
	(cd "$FUZZ" && cargo +nightly fuzz build -O "${SAN[@]}" "$@") >>"$TMP/build.log" 2>&1 || {
		tail -30 "$TMP/build.log" >&2
		die "cargo fuzz build failed"
	}
}
if ((${#TARGETS[@]} == ${#ALL[@]})); then
	fuzz_build
else
	for t in "${TARGETS[@]}"; do fuzz_build "$t"; done
fi

# ---------------------------------------------------------------- runs

# run_one TARGET: libFuzzer on its corpus for SECS; its log in $TMP/TARGET.log, its summary
# line in $TMP/TARGET.sum.
run_one() {
	local t=$1 log=$TMP/$1.log art=$TMP/artifacts/$1/ rc
	mkdir -p "$art"
	(cd "$FUZZ" && cargo +nightly fuzz run -O "${SAN[@]}" "$t" "$CORPUS/$t" -- \
		-max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$art") >"$log" 2>&1
	rc=$?
	local execs rate cov ft files crashes=0
	execs=$(awk -F: '/stat::number_of_executed_units/ { gsub(/ /, "", $NF); print $NF }' "$log" | tail -1)
	rate=$(awk -F: '/stat::average_exec_per_sec/ { gsub(/ /, "", $NF); print $NF }' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	files=$(find "$CORPUS/$t" -type f | wc -l)
	if ((rc != 0)) || compgen -G "$art*" >/dev/null; then
		crashes=$(find "$art" -type f | wc -l)
		((crashes > 0)) || crashes=1
		mkdir -p "$CRASHES/$t"
		cp "$art"* "$CRASHES/$t/" 2>/dev/null
		{
			echo "$PROG: $t FAILED (exit status $rc); its inputs are in $CRASHES/$t/:"
			grep -m1 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log"
			tail -25 "$log"
		} >"$TMP/$t.fail"
	fi
	printf '%-16s %6s %14s %10s %7s %8s %7s %7s\n' "$t" "$SECS" "${execs:-?}" "${rate:-?}" \
		"${cov:-?}" "${ft:-?}" "$files" "$crashes" >"$TMP/$t.sum"
}

echo "$PROG: ${#TARGETS[@]} targets, ${SECS} s each, $JOBS at a time; corpora in $CORPUS"
running=0
for t in "${TARGETS[@]}"; do
	run_one "$t" &
	running=$((running + 1))
	if ((running >= JOBS)); then
		wait -n
		running=$((running - 1))
	fi
done
wait

status=0 total=0
for t in "${TARGETS[@]}"; do
	if [[ -f $TMP/$t.fail ]]; then
		cat "$TMP/$t.fail" >&2
		status=1
	fi
done
printf '\n%-16s %6s %14s %10s %7s %8s %7s %7s\n' target seconds executions exec/s cov ft corpus crashes
for t in "${TARGETS[@]}"; do
	cat "$TMP/$t.sum"
	n=$(awk '{ print $3 }' "$TMP/$t.sum")
	[[ $n =~ ^[0-9]+$ ]] && total=$((total + n))
done
echo "total executions: $total"
((status == 0)) && echo "$PROG: no crash" || echo "$PROG: a target failed (see above)"
exit $status
