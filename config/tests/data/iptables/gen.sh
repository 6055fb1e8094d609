#!/bin/sh
# Regenerates the *.save fixtures from the *.sh rule scripts by loading each script into a
# throwaway network namespace with the real iptables / ip6tables and dumping the result
# with iptables-save / ip6tables-save. Needs root. The tests only read the committed dumps.
#   usage: sh gen.sh   (from this directory)
set -eu
cd "$(dirname "$0")"
for script in *.sh; do
    [ "$script" = gen.sh ] && continue
    name=${script%.sh}
    ns="h2fix-$$-$name"
    ip netns add "$ns"
    trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
    # The script's lines are plain `iptables ...` / `ip6tables ...` commands.
    ip netns exec "$ns" sh -eu "$script"
    # Scripts using the legacy (x_tables) binaries are dumped with the legacy savers, with
    # packet counters (-c) to cover the `[packets:bytes] -A ...` form.
    if grep -q 'tables-legacy' "$script"; then
        save4="iptables-legacy-save -c" save6="ip6tables-legacy-save -c"
    else
        save4=iptables-save save6=ip6tables-save
    fi
    {
        if grep -q '^iptables' "$script"; then
            ip netns exec "$ns" $save4
        fi
        if grep -q '^ip6tables' "$script"; then
            ip netns exec "$ns" $save6
        fi
    } | sed -e 's/ on [A-Z][a-z][a-z] .*$//' > "$name.save"
    ip netns del "$ns"
    trap - EXIT
    echo "wrote $name.save"
done
