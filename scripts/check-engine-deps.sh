#!/usr/bin/env bash
# The engine crate is sans IO and builds without a C toolchain: `cargo tree` must show none of
# the runtime's crates in the normal dependency graph of statewall-engine, and none of the
# crates that need clang/libelf (xsk-rs, libbpf-sys, libxdp-sys) in those of the engine
# benches (statewall-bench) and the fuzz targets (dataplane/fuzz). Exits 1 naming what leaked.
#
#   scripts/check-engine-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Crates that need clang, libelf and zlib to build (xsk-rs vendors libbpf and libxdp).
NEEDS_C=(xsk-rs libbpf-sys libxdp-sys)
# What a pure library has no use for (DESIGN.md §2: the engine's dependencies).
RUNTIME=(libc crossbeam hdrhistogram clap anyhow core_affinity signal-hook)

# Crate names in a package's normal dependency graph, one per line.
graph() {
	cargo tree --quiet -e normal --prefix none "$@" | awk '{print $1}' | sort -u
}

failed=0
check() {
	local what=$1 deps=$2
	shift 2
	local bad=()
	for c in "$@"; do
		grep -qx -- "$c" <<<"$deps" && bad+=("$c")
	done
	if ((${#bad[@]} > 0)); then
		echo "check-engine-deps: $what depends on ${bad[*]}: find the path with \`cargo tree -i ${bad[0]} ...\` and cut it" >&2
		failed=1
	else
		echo "check-engine-deps: $what: none of $*"
	fi
}

engine=$(graph -p statewall-engine)
check statewall-engine "$engine" "${NEEDS_C[@]}" "${RUNTIME[@]}"
check statewall-bench "$(graph -p statewall-bench)" "${NEEDS_C[@]}"
check "dataplane/fuzz" "$(cd dataplane/fuzz && graph)" "${NEEDS_C[@]}"
# And the check itself sees a graph: the engine has its config crate in it.
grep -qx statewall-config <<<"$engine" || {
	echo "check-engine-deps: cargo tree printed no statewall-config for the engine: the check is broken" >&2
	failed=1
}
exit "$failed"
