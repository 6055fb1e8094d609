#!/usr/bin/env bash
# Statewall, offline demo: validate the seed gateway's ruleset, then run a real capture through
# the engine and show what it decided for each packet, beside what the Linux kernel decided.
#
#   scripts/demo.sh [--no-deps] [CAPTURE_PREFIX]   (default: tests/data/http-gateway)
#
# As root on a fresh Debian this first installs the build dependencies (scripts/install-deps.sh;
# --no-deps skips that). The capture was recorded through the kernel's bridge + iptables
# gateway by scripts/capture-lab.sh: a web fetch, a connection refused by the firewall, a ping.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=/usr/bin/python3
CONFIG=examples/seed-gateway.yaml
deps=1
prefix=tests/data/http-gateway
for arg in "$@"; do
	case $arg in
	--no-deps) deps=0 ;;
	--live)
		echo "demo: --live (statewall in the lab between real hosts) is not available yet" >&2
		exit 2
		;;
	-h | --help)
		sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "demo: unknown option $arg (try --help)" >&2
		exit 2
		;;
	*) prefix=$arg ;;
	esac
done

TMP=$(mktemp -d /tmp/sw-demo.XXXXXX)
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

if [[ -t 1 ]]; then
	BOLD=$'\033[1m' PLAIN=$'\033[0m'
else
	BOLD='' PLAIN=''
fi
title() {
	printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"
}

if ((deps)); then
	title "dependencies (scripts/install-deps.sh)"
	scripts/install-deps.sh
fi
if ! command -v cargo >/dev/null 2>&1 && [[ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]]; then
	# shellcheck source=/dev/null
	. "${CARGO_HOME:-$HOME/.cargo}/env"
fi

# STATEWALL=/path/to/statewall uses that binary instead of building one.
if [[ -n ${STATEWALL:-} ]]; then
	BIN=$STATEWALL
else
	title "cargo build --release"
	cargo build --release
	BIN=${CARGO_TARGET_DIR:-target}/release/statewall
fi

title "statewall check $CONFIG"
"$BIN" check "$CONFIG"

title "statewall replay --config $CONFIG --pcap $prefix.pcapng"
"$BIN" replay --config "$CONFIG" --pcap "$prefix.pcapng" >"$TMP/replay.jsonl"
"$PY" scripts/verdicts.py table "$TMP/replay.jsonl" --capture "$prefix.pcapng"

if [[ -f $prefix.kernel.jsonl ]]; then
	title "the same capture through the Linux kernel (bridge + br_netfilter + iptables)"
	"$PY" scripts/verdicts.py compare "$prefix.kernel.jsonl" "$TMP/replay.jsonl" \
		--capture "$prefix.pcapng" || true
fi
