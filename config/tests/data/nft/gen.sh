#!/bin/sh
# Regenerates the *.json fixtures from the *.nft rulesets by loading each into a throwaway
# network namespace with the real nft and dumping it with `nft -j list ruleset`. Needs root
# and nftables. The tests only read the committed JSON.
#   usage: sh gen.sh   (from this directory)
set -eu
cd "$(dirname "$0")"
for src in *.nft; do
    name=${src%.nft}
    ns="nftfix-$$-$name"
    ip netns add "$ns"
    trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
    ip netns exec "$ns" nft -f "$src"
    ip netns exec "$ns" nft -j list ruleset > "$name.json"
    ip netns del "$ns"
    trap - EXIT
    echo "wrote $name.json"
done
