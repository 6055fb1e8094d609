"""Turn the kernel gateway's recordings into per-packet answers (scripts/capture-lab.sh).

Inputs, all recorded inside the gateway namespace of the capture lab:
  --capture  the merged ingress capture (pcapng, interfaces named by port), the packets whose
             fate we want, in order;
  --nflog    NFLOG capture (linktype 239) of the FORWARD chain's logging rules, which log
             every packet once, before the ruleset, with the conntrack state as the prefix
             (`new`, `established`, `related`, `invalid`, `untracked`);
  --egress PORT=FILE  what left the gateway on each bridge port (`tcpdump -Q out`).

A captured packet's ctstate is the prefix of the NFLOG entry carrying the same packet (null for
frames that never reach iptables, such as ARP); its verdict is `accept` when the same packet
left on the other port, `drop` otherwise. Packets are matched by swlab.pcapng's
flow_key: addresses, protocol, IPv4 id, length, ports, TCP seq/ack/flags or ICMP id/seq,
and a digest of the payload (all bytes for non-IP frames); repeats match first-in first-out.

Writes one JSON object per captured packet to stdout, in capture order:
  {"index":N,"port":"lan","ctstate":"new","verdict":"accept"}
and a readable table to stderr.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

from . import pcapng

STATES = {"new", "established", "related", "invalid", "untracked"}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="swlab kernel-oracle",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--capture", required=True)
    ap.add_argument("--nflog", required=True)
    ap.add_argument("--egress", action="append", default=[], metavar="PORT=FILE")
    ap.add_argument("--pair", default="lan:wan", help="the two bridge ports, A:B")
    args = ap.parse_args(argv)

    a, _, b = args.pair.partition(":")
    peer = {a: b, b: a}

    # key -> FIFO of (timestamp, state)
    logged: dict = collections.defaultdict(collections.deque)
    for p in pcapng.read_packets(args.nflog):
        if p.linktype != pcapng.LINKTYPE_NFLOG:
            raise SystemExit(f"{args.nflog}: expected an NFLOG capture, got linktype {p.linktype}")
        state = pcapng.nflog_prefix(p.data)
        if state not in STATES:
            raise SystemExit(f"{args.nflog}: unexpected NFLOG prefix {state!r}")
        logged[pcapng.flow_key(p.linktype, p.data)].append((p.ts_ns, state))

    left: dict = {}
    for spec in args.egress:
        port, _, path = spec.partition("=")
        q: dict = collections.defaultdict(collections.deque)
        for p in pcapng.read_packets(path):
            q[pcapng.flow_key(p.linktype, p.data)].append(p.ts_ns)
        left[port] = q

    problems = []
    rows = []
    for i, p in enumerate(pcapng.read_packets(args.capture)):
        key = pcapng.flow_key(p.linktype, p.data)
        is_ip = pcapng.ip_info(p.linktype, p.data) is not None
        ctstate = None
        if is_ip:
            q = logged.get(key)
            if q:
                ctstate = q.popleft()[1]
            else:
                problems.append(f"packet {i}: IP but not logged by the FORWARD chain")
        out = left.get(peer.get(p.ifname, ""), {}).get(key)
        # Drop egress copies that predate this packet (an earlier twin that was never captured
        # on ingress cannot exist on a bridge, but be strict about time order anyway).
        while out and out[0] < p.ts_ns:
            out.popleft()
        verdict = "drop"
        if out:
            out.popleft()
            verdict = "accept"
        rows.append({"index": i, "port": p.ifname, "ctstate": ctstate, "verdict": verdict})
        print(f"{i:4d} {p.ifname or '-':4s} {str(ctstate):12s} {verdict:7s} "
              f"{pcapng.summarize(p.linktype, p.data)}", file=sys.stderr)

    leftover = sum(len(q) for q in logged.values())
    if leftover:
        problems.append(f"{leftover} NFLOG entries matched no captured packet")
    for line in problems:
        print(f"kernel-oracle: warning: {line}", file=sys.stderr)

    for r in rows:
        print(json.dumps(r, separators=(",", ":")))
    return 1 if problems else 0

