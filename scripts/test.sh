#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): dependencies, format, lints, release build,
# the engine's dependency graph, every cargo test (unit, integration, property, and the
# engine against the kernel's recorded answers), then the script-level tests (lints, the live
# kernel check, lab tests; scripts/test-*.sh), which need root and network namespaces.
# docs/testing.md says what each layer covers and how to run one test.
#
#   scripts/test.sh
#
# Respects CARGO_TARGET_DIR. Script-level tests each run under a time limit; the last line is
# "N passed, N failed" for them.
set -euo pipefail

cd "$(dirname "$0")/.."
START=$SECONDS
SCRIPT_TEST_LIMIT=${SCRIPT_TEST_LIMIT:-600} # seconds per scripts/test-*.sh

step() {
	printf '\n==> %s  (%ds)\n' "$*" $((SECONDS - START))
}

step "scripts/install-deps.sh"
scripts/install-deps.sh
# install-deps.sh ran in its own process; make cargo visible here too.
if ! command -v cargo >/dev/null 2>&1 && [[ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]]; then
	# shellcheck source=/dev/null
	. "${CARGO_HOME:-$HOME/.cargo}/env"
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build --workspace --release"
cargo build --workspace --release

step "cargo test --workspace"
cargo test --workspace

# The fuzz targets (dataplane/fuzz, a crate of its own) must keep compiling; running them
# needs nightly and cargo-fuzz: `cd dataplane/fuzz && cargo +nightly fuzz run engine`.
step "cargo check (fuzz targets)"
(cd dataplane/fuzz && cargo check --quiet --bins)

# The engine is a pure library: it, the engine benches and the fuzz targets must build on a
# machine without clang or libelf, so none of the AF_XDP runtime's crates (nor threads,
# histograms, CLI or anyhow) may enter their dependency graphs.
step "dependency graphs: statewall-engine, statewall-bench, fuzz"
scripts/check-engine-deps.sh

step "script-level tests"
if [[ $(id -u) -ne 0 ]]; then
	echo "test.sh: the script-level tests (scripts/test-*.sh) need root: they build network" >&2
	echo "test.sh: namespaces and load iptables rules. Run scripts/test.sh as root (CI does)." >&2
	exit 1
fi

passed=0
failed=0
failures=()
run_script_test() {
	local name=$1
	shift
	printf '\n--- %s\n' "$name"
	local t0=$SECONDS rc=0
	timeout --kill-after=10 "$SCRIPT_TEST_LIMIT" "$@" || rc=$?
	if ((rc == 0)); then
		passed=$((passed + 1))
		echo "--- PASS $name ($((SECONDS - t0))s)"
	else
		failed=$((failed + 1))
		failures+=("$name")
		((rc == 124)) && echo "--- $name: timed out after ${SCRIPT_TEST_LIMIT}s"
		echo "--- FAIL $name (exit $rc, $((SECONDS - t0))s)"
	fi
}

# The scripts themselves must be shellcheck-clean.
if command -v shellcheck >/dev/null 2>&1; then
	mapfile -t shell_scripts < <(git ls-files -- 'scripts/*.sh' 'scripts/lib/*.sh' '.ci/run')
	run_script_test shellcheck shellcheck "${shell_scripts[@]}"
fi
# The Python under scripts/ (the swlab package) must pass ruff (scripts/ruff.toml; installed by
# install-deps.sh); where ruff could not be installed, it must at least byte-compile.
if [[ -x /opt/statewall-lint/bin/ruff ]]; then
	run_script_test ruff /opt/statewall-lint/bin/ruff check --no-cache scripts/
else
	mapfile -t python_files < <(find scripts -name '*.py' | sort)
	run_script_test py_compile env PYTHONPYCACHEPREFIX=/tmp/statewall-pycache \
		/usr/bin/python3 -m py_compile "${python_files[@]}"
fi
for t in scripts/test-*.sh; do
	[[ -e $t ]] || continue
	run_script_test "$t" "$t"
done
# The fuzz regression gate: every target 20 s from its seeds (scripts/fuzz.sh installs
# nightly and cargo-fuzz when missing and builds the targets with AddressSanitizer first,
# hence the longer limit). A crash fails it; the long runs are docs/reliability.md's.
SCRIPT_TEST_LIMIT=1500 run_script_test fuzz-gate scripts/fuzz.sh --seconds 20 --jobs 2

printf '\n'
((failed == 0)) || echo "failed: ${failures[*]}"
echo "total time $((SECONDS - START))s"
echo "$passed passed, $failed failed"
((failed == 0))
