#!/usr/bin/env bash
# Live multi-worker test: statewall with two workers on a lab whose veths have two queues
# (`--workers auto`, which must find the two queues: one worker per queue).
# Flows arrive on either queue; each is owned by one worker (symmetric hash), packets that
# arrive on the other worker's queue are handed over. Requires: every connection works, the
# table holds exactly one entry per flow, handoffs happened, and shutdown detaches XDP.
set -euo pipefail

cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || {
	echo "test-workers: needs root" >&2
	exit 1
}
BIN=${STATEWALL:-${CARGO_TARGET_DIR:-target}/release/statewall}
CTL=$(dirname "$BIN")/statewallctl
export LAB=swmq$$ LAB_QUEUES=2
TMP=$(mktemp -d /tmp/sw-workers.XXXXXX)
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	set +e
	[[ -f $TMP/pid ]] && kill -TERM "$(cat "$TMP/pid")" 2>/dev/null && sleep 1
	[[ -f $TMP/http ]] && kill "$(cat "$TMP/http")" 2>/dev/null
	scripts/lab.sh down >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

scripts/lab.sh up >/dev/null
ip netns exec "$LAB-server" /usr/bin/python3 -m http.server 80 --bind 10.10.0.3 \
	--directory "$TMP" >/dev/null 2>&1 &
echo $! >"$TMP/http"
echo ok >"$TMP/index.html"
ip netns exec "$LAB-gw" "$BIN" run --config examples/seed-gateway.yaml --state none --workers auto \
	--control-socket "$TMP/sock" --no-pin >"$TMP/log" 2>&1 &
echo $! >"$TMP/pid"
for _ in $(seq 100); do [[ -S $TMP/sock ]] && break; sleep 0.1; done
[[ -S $TMP/sock ]] || {
	cat "$TMP/log" >&2
	exit 1
}
sleep 0.5

flows=20
ok=0
for i in $(seq $flows); do
	# Distinct source ports: distinct flows, spread over both workers by the hash.
	if ip netns exec "$LAB-client" curl -sf -m 5 --local-port $((41000 + i)) \
		-o /dev/null http://10.10.0.3/; then
		ok=$((ok + 1))
	fi
done
count=$("$CTL" --socket "$TMP/sock" --json conntrack count | /usr/bin/python3 -c \
	'import json,sys; d=json.load(sys.stdin)["data"]; print(d.get("by_proto",{}).get("tcp",0))')
stats=$("$CTL" --socket "$TMP/sock" --json stats --per-core)
handoffs=$(echo "$stats" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["total"]["handoffs_out"])')
per_core=$(echo "$stats" | /usr/bin/python3 -c \
	'import json,sys; print(" ".join(str(c["entries"]) for c in json.load(sys.stdin)["data"]["per_core"]))')

kill -TERM "$(cat "$TMP/pid")"
wait "$(cat "$TMP/pid")" 2>/dev/null || true
rm -f "$TMP/pid"
xdp_left=$(ip -n "$LAB-gw" link show | grep -c xdp || true)

echo "test-workers: $ok/$flows connections, tcp entries $count (per worker: $per_core), handoffs $handoffs, xdp left $xdp_left"
fail=0
grep -q -- '--workers auto: 2 worker(s), one per queue' "$TMP/log" || {
	echo "test-workers: --workers auto did not start one worker per queue:" >&2
	cat "$TMP/log" >&2
	fail=1
}
((ok == flows)) || fail=1
((count == flows)) || fail=1
((handoffs > 0)) || fail=1
((xdp_left == 0)) || fail=1
((fail == 0)) && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
