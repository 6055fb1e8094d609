#!/usr/bin/env bash
# Checks the bundled kernel captures and the lab that makes them:
#  1. each tests/data/*.pcapng has exactly one kernel answer per packet, with matching ports,
#     and (when tshark is installed) tshark reads the same interface names;
#  2. scripts/capture-lab.sh still runs on this machine and the kernel still answers the same
#     way: a fresh recording has the same sequence of (port, ctstate, verdict) as
#     tests/data/http-gateway.kernel.jsonl (addresses, ports and sequence numbers differ from
#     run to run; the shape of the exchange does not).
# Needs root (the lab builds network namespaces).
set -euo pipefail

cd "$(dirname "$0")/.."
PROG=test-capture-lab
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh

TMP=$(mktemp -d /tmp/sw-caplab.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

fail=0
for cap in tests/data/*.pcapng; do
	prefix=${cap%.pcapng}
	[[ -f $prefix.kernel.jsonl ]] || {
		echo "test-capture-lab: $cap has no $prefix.kernel.jsonl" >&2
		fail=1
		continue
	}
	"$PY" "$SWLAB" pcapng list "$cap" --json >"$TMP/list.jsonl"
	if ! "$PY" - "$TMP/list.jsonl" "$prefix.kernel.jsonl" <<'PYEOF'; then
import json, sys
pk = [json.loads(l) for l in open(sys.argv[1])]
kn = [json.loads(l) for l in open(sys.argv[2])]
assert len(pk) == len(kn), f"{len(pk)} packets but {len(kn)} kernel answers"
for p, k in zip(pk, kn):
    assert p["index"] == k["index"], f"index {p['index']} vs {k['index']}"
    assert p["port"] == k["port"], f"packet {p['index']}: port {p['port']} vs {k['port']}"
    assert k["verdict"] in ("accept", "drop"), f"packet {p['index']}: verdict {k['verdict']}"
PYEOF
		echo "test-capture-lab: $cap and $prefix.kernel.jsonl disagree" >&2
		fail=1
	fi
	if command -v tshark >/dev/null 2>&1; then
		if ! diff <(tshark -r "$cap" -T fields -e frame.interface_name 2>/dev/null) \
			<("$PY" -c 'import json,sys; [print(json.loads(l)["port"]) for l in open(sys.argv[1])]' \
				"$TMP/list.jsonl") >/dev/null; then
			echo "test-capture-lab: tshark reads other interface names in $cap" >&2
			fail=1
		fi
	fi
	echo "test-capture-lab: $cap: $(wc -l <"$prefix.kernel.jsonl") packets, answers consistent"
done

scripts/capture-lab.sh "$TMP/fresh" >"$TMP/lab.log" 2>&1 || {
	echo "test-capture-lab: scripts/capture-lab.sh failed:" >&2
	tail -n 30 "$TMP/lab.log" >&2
	exit 1
}
shape() { "$PY" -c 'import json,sys; [print(d["port"], d["ctstate"], d["verdict"]) for d in map(json.loads, open(sys.argv[1]))]' "$1"; }
if ! diff -u <(shape tests/data/http-gateway.kernel.jsonl) <(shape "$TMP/fresh.kernel.jsonl") \
	>"$TMP/shape.diff"; then
	echo "test-capture-lab: the kernel answered a fresh capture differently from the bundled one" >&2
	echo "(port ctstate verdict per packet; - bundled, + fresh):" >&2
	cat "$TMP/shape.diff" >&2
	echo "fresh capture:" >&2
	"$PY" "$SWLAB" pcapng list "$TMP/fresh.pcapng" >&2
	fail=1
else
	echo "test-capture-lab: fresh kernel recording has the bundled shape"
fi
exit "$fail"
