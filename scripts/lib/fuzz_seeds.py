#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from what the repository already holds.

    python3 scripts/lib/fuzz_seeds.py OUTDIR

writes OUTDIR/<target>/<name> for the targets whose best seeds are the repository's own
captures and rulesets (scripts/fuzz.sh adds the committed dataplane/fuzz/seeds/<target>/):

  capture   every pcapng under tests/ (whole files)
  parse     every distinct frame of those captures
  engine    each capture as the engine target's records: [ctl][len][frame, at most 255 bytes],
            ctl = (seconds since the previous frame, at most 127) << 1 | port (lan 0, else 1)
  defrag    each fragment scenario's frames as the defrag target's raw records:
            [0x80][len hi][len lo][frame]
  iptables  every rules.iptables / *.rules / *.iptables file (each alone, and the seed's rules
            with a sysctl file and a helpers file after NUL separators)
  nft       config/tests/data/nft/*.json and every nftables scenario's rules.json
  config    examples/*.yaml and the packaged default configuration
"""

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "swlab"))
from pcapng import read_packets  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MAX_PARSE = 4000


def put(out: Path, target: str, name: str, data: bytes) -> None:
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def captures():
    yield from sorted((REPO / "tests").rglob("*.pcapng"))


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    seen_frames = set()
    counts = {}

    def count(t):
        counts[t] = counts.get(t, 0) + 1

    for p in captures():
        rel = p.relative_to(REPO).as_posix().replace("/", "_")
        put(out, "capture", rel, p.read_bytes())
        count("capture")
        records = bytearray()
        raw = bytearray()
        last = None
        for pkt in read_packets(str(p)):
            if pkt.linktype != 1:
                continue
            h = hashlib.sha1(pkt.data).hexdigest()[:16]
            if h not in seen_frames and len(seen_frames) < MAX_PARSE:
                seen_frames.add(h)
                put(out, "parse", h, pkt.data)
                count("parse")
            dt = 0 if last is None else max(0, (pkt.ts_ns - last) // 1_000_000_000)
            last = pkt.ts_ns
            port = 0 if (pkt.ifname or "lan") == "lan" else 1
            frame = pkt.data[:255]
            records += bytes([(min(dt, 127) << 1) | port, len(frame)]) + frame
            if "fragments" in p.as_posix():
                raw += bytes([0x80]) + len(pkt.data).to_bytes(2, "big") + pkt.data
        if records:
            put(out, "engine", rel, bytes(records))
            count("engine")
        if raw:
            put(out, "defrag", rel, bytes(raw))
            count("defrag")

    rules = sorted(
        list((REPO / "tests").rglob("rules.iptables"))
        + list((REPO / "tests").rglob("*.iptables"))
        + list((REPO / "scripts" / "live" / "rules").glob("*.rules"))
    )
    for p in dict.fromkeys(rules):
        rel = p.relative_to(REPO).as_posix().replace("/", "_")
        put(out, "iptables", rel, p.read_bytes())
        count("iptables")
    seed = REPO / "scripts" / "live" / "rules" / "seed.rules"
    if seed.exists():
        sysctl = (
            b"net.netfilter.nf_conntrack_tcp_loose = 0\n"
            b"net.netfilter.nf_conntrack_max = 1000\n"
            b"net.ipv4.ipfrag_time = 10\n"
            b"net.netfilter.nf_conntrack_frag6_high_thresh = 1048576\n"
        )
        helpers = b"options nf_conntrack_ftp ports=21,2121\n"
        put(
            out,
            "iptables",
            "seed-with-sysctl-helpers",
            seed.read_bytes() + b"\0" + sysctl + b"\0" + helpers,
        )
        count("iptables")

    # Scenarios with sets: the rules and `ipset save` (the fourth part).
    for sets in sorted((REPO / "tests").rglob("ipset.save")):
        rules_file = sets.parent / "rules.iptables"
        if rules_file.exists():
            rel = sets.parent.relative_to(REPO).as_posix().replace("/", "_")
            put(out, "iptables", rel + "-ipset",
                rules_file.read_bytes() + b"\0\0\0" + sets.read_bytes())
            count("iptables")

    nft = sorted((REPO / "config" / "tests" / "data" / "nft").glob("*.json")) + sorted(
        (REPO / "tests").rglob("rules.json")
    )
    for p in nft:
        rel = p.relative_to(REPO).as_posix().replace("/", "_")
        put(out, "nft", rel, p.read_bytes())
        count("nft")

    yamls = sorted((REPO / "examples").glob("*.yaml")) + sorted(
        (REPO / "packaging").rglob("*.yaml")
    )
    for p in yamls:
        rel = p.relative_to(REPO).as_posix().replace("/", "_")
        put(out, "config", rel, p.read_bytes())
        count("config")

    print(" ".join(f"{t}={n}" for t, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
