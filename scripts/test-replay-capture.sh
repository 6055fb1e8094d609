#!/usr/bin/env bash
# Replay the bundled kernel-gateway capture through statewall and compare, packet by packet,
# the conntrack state and verdict with what the Linux kernel decided for the same packets
# (tests/data/*.kernel.jsonl, recorded by scripts/capture-lab.sh).
#
#   scripts/test-replay-capture.sh [CAPTURE_PREFIX ...]    (default: tests/data/http-gateway)
#
# Uses ${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall}; build it first
# (`cargo build --release`). Exits non-zero on any difference, after printing a table of them.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=/usr/bin/python3
BIN=${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall}
CONFIG=${CONFIG:-examples/seed-gateway.yaml}

[[ -x $BIN ]] || {
	echo "test-replay-capture: $BIN not found; run cargo build --release first" >&2
	exit 1
}
(($# > 0)) || set -- tests/data/http-gateway

OUT=$(mktemp -d /tmp/sw-replay.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

fail=0
for prefix in "$@"; do
	name=$(basename "$prefix")
	rc=0
	"$BIN" replay --config "$CONFIG" --pcap "$prefix.pcapng" \
		>"$OUT/$name.jsonl" 2>"$OUT/$name.err" || rc=$?
	if ((rc != 0)); then
		echo "test-replay-capture: $name: statewall replay exited $rc:" >&2
		sed 's/^/    /' "$OUT/$name.err" >&2
		fail=1
		continue
	fi
	echo "test-replay-capture: $name"
	"$PY" scripts/verdicts.py compare "$prefix.kernel.jsonl" "$OUT/$name.jsonl" \
		--capture "$prefix.pcapng" || fail=1
done
exit "$fail"
