"""nftables rulesets for the differential scenarios: what `nft -j list ruleset` makes of a
scenario's rules.nft (the input `statewall import-nft` reads), made in a throwaway network
namespace so the host's own ruleset is never touched."""

from __future__ import annotations

import json
import os
import subprocess


def dump(nft_text: str) -> str:
    """Load nft_text into a fresh namespace and return `nft -j list ruleset`. Needs root and
    nftables."""
    ns = f"swnft-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=nft_text,
                       text=True, check=True)
        out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return out


def same(a: str, b: str) -> bool:
    """Whether two `nft -j list ruleset` outputs hold the same ruleset (the metainfo entry,
    which names nft's version, aside)."""
    def body(t: str) -> list:
        return [o for o in json.loads(t).get("nftables", []) if "metainfo" not in o]
    return body(a) == body(b)
