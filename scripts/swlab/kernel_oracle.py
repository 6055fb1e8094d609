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
from typing import NamedTuple

from . import pcapng

STATES = {"new", "established", "related", "invalid", "untracked"}


# ---------------------------------------------------------------------------------------
# IP fragments. The kernel reassembles before conntrack (nf_defrag_ipv4 / nf_defrag_ipv6 in
# PRE_ROUTING): a fragment is held (stolen) until its datagram is complete, the reassembled
# datagram goes through FORWARD once (one NFLOG entry, carrying no fragment header and the
# timestamp of the fragment that completed it), and the bridge re-fragments it on output
# (br_nf_dev_queue_xmit), IPv6 with a fresh fragment identification. So:
#   ctstate of a fragment frame: the state logged for the datagram this frame completed
#     (the group's last frame that arrived at or before the NFLOG entry's timestamp); null
#     for a fragment that completed nothing (held, duplicate, overlapping, expired); a
#     fragment that went through FORWARD on its own (not reassembled) is matched exactly.
#   verdict: accept when a frame with its bytes at its offset (flow_key with frag_id=False)
#     left on the other port after it arrived; identical fragments take the copies in
#     arrival order.


SLACK_NS = 2_000_000


class Frame(NamedTuple):
    """An ingress frame of a scenario and when the kernel saw it arrive."""

    port: str
    linktype: int
    data: bytes
    ts_ns: int


def datagram_key(info: pcapng.IpInfo):
    """Which reassembly a fragment (or a reassembled datagram) belongs to: addresses, the
    IPv4 protocol and id / the IPv6 flow label (the scenarios give each datagram its own;
    a reassembled IPv6 datagram has no fragment identification left to compare)."""
    return (info.family, info.src, info.dst, info.proto if info.family == 4 else None,
            info.ipid)


def reassembled(frames: list[Frame], entries, taken: set[int]):
    """Attribute NFLOG entries that match no frame exactly (reassembled datagrams) to the
    fragment that completed each. entries: [(ts_ns, state, IpInfo)]; taken: frames that
    already have an exact entry. Returns ({frame index: state}, {datagram keys logged},
    problems)."""
    groups: dict = collections.defaultdict(list)
    for i, f in enumerate(frames):
        info = pcapng.ip_info(f.linktype, f.data)
        if info is not None and info.frag is not None and i not in taken:
            groups[datagram_key(info)].append(i)
    states: dict[int, str] = {}
    logged: set = set()
    problems = []
    for ts, state, info in entries:
        key = datagram_key(info)
        # NFULA_TIMESTAMP is the completing fragment's skb timestamp (microseconds), taken a
        # microsecond or so before the ingress capture stamps the same frame; the lab sends
        # frames at least 4 ms apart, so 2 ms of slack cannot reach the next one.
        before = [i for i in groups.get(key, []) if frames[i].ts_ns <= ts + SLACK_NS]
        if not before:
            problems.append(f"NFLOG entry matches no packet of the scenario: {key} {state}")
            continue
        i = before[-1]
        if i in states:
            problems.append(f"packet {i}: completed more than one logged datagram")
        states[i] = state
        logged.add(key)
    return states, logged, problems


class Out(NamedTuple):
    """A frame that left, as a candidate copy of ingress fragments."""

    ts_ns: int
    dgram: tuple  # datagram_key
    offset: int
    data: bytes  # fragment data, or a whole datagram's bytes after its IP (and ext) headers
    taken: bytearray  # per byte: credited to an ingress fragment already


def egress_index(packets, dgrams: set) -> tuple[dict, dict, list[Out]]:
    """What left on one port: (non-fragment flow_key -> count, fragment flow_key(frag_id=False)
    -> [Out], [Out] of every fragment and of every whole datagram of a datagram in dgrams)."""
    whole: dict = {}
    exact: dict = collections.defaultdict(list)
    pool: list[Out] = []
    for q in packets:
        info = pcapng.ip_info(q.linktype, q.data)
        if info is not None and info.frag is not None:
            o = Out(q.ts_ns, datagram_key(info), info.frag.offset, info.frag.data,
                    bytearray(len(info.frag.data)))
            exact[pcapng.flow_key(q.linktype, q.data, frag_id=False)].append(o)
            pool.append(o)
            continue
        k = pcapng.flow_key(q.linktype, q.data)
        whole[k] = whole.get(k, 0) + 1
        if info is not None and datagram_key(info) in dgrams:
            pool.append(Out(q.ts_ns, datagram_key(info), 0, info.l4, bytearray(len(info.l4))))
    return whole, exact, pool


def left_exact(frame: Frame, exact: dict) -> bool:
    """Whether an unchanged copy of this fragment (its bytes at its offset, flow_key with
    frag_id=False) left after it arrived; the first such copy is credited to it."""
    for o in exact.get(pcapng.flow_key(frame.linktype, frame.data, frag_id=False), ()):
        if o.ts_ns >= frame.ts_ns and not any(o.taken):
            o.taken[:] = b"\1" * len(o.taken)
            return True
    return False


def left_covered(frame: Frame, info: pcapng.IpInfo, pool: list[Out]) -> bool:
    """Whether every byte of this fragment left at its place in its datagram, in frames that
    left after it arrived and were not credited to another ingress fragment yet (the kernel
    re-fragmented it in another geometry, or sent the datagram whole); credits them."""
    key, f = datagram_key(info), info.frag
    want = []
    for pos in range(f.offset, f.offset + len(f.data)):
        for o in pool:
            j = pos - o.offset
            if (o.dgram == key and o.ts_ns >= frame.ts_ns and 0 <= j < len(o.data)
                    and not o.taken[j] and o.data[j] == f.data[pos - f.offset]):
                want.append((o, j))
                break
        else:
            return False
    for o, j in want:
        o.taken[j] = 1
    return True


def nflog_entry_ts(p) -> int:
    """An NFLOG capture record's packet timestamp: NFULA_TIMESTAMP, else when it was read."""
    ts = pcapng.nflog_ts_ns(p.data)
    return p.ts_ns if ts is None else ts


def judge(frames: list[Frame], nflog, egress: dict, peer: dict):
    """The kernel's answer per ingress frame of a kernel lab run: (rows, problems).
    nflog: the NFLOG capture's records; egress: port -> the records that left on it."""
    logged: dict = {}
    for q in nflog:
        k = pcapng.flow_key(q.linktype, q.data)
        logged.setdefault(k, []).append((pcapng.nflog_prefix(q.data), q))
    problems: list[str] = []
    states: dict[int, str | None] = {}
    frag_of: dict[int, pcapng.IpInfo] = {}
    for i, p in enumerate(frames):
        info = pcapng.ip_info(p.linktype, p.data)
        k = pcapng.flow_key(p.linktype, p.data)
        if info is not None and info.frag is not None:
            frag_of[i] = info
            got = logged.get(k)
            if got:  # went through FORWARD as it is (not reassembled)
                states[i] = got.pop(0)[0]
                if not got:
                    del logged[k]
            continue
        st = logged.pop(k, [(None, None)])
        if len(st) != 1:
            problems.append(f"packet {i}: logged {len(st)} times")
        states[i] = st[0][0]
    # What is left in the NFLOG capture: reassembled datagrams, attributed to the fragment
    # that completed each.
    rest = []
    for k, v in logged.items():
        for state, q in v:
            info = pcapng.ip_info(q.linktype, q.data)
            if info is None or info.frag is not None:
                problems.append(f"NFLOG entry matches no packet of the scenario: {k} {state}")
            else:
                rest.append((nflog_entry_ts(q), state, info))
    rest.sort(key=lambda e: e[0])
    done, dgrams, more = reassembled(frames, rest, {i for i in frag_of if states.get(i)})
    problems += more
    for i, state in done.items():
        states[i] = state
    keys = {datagram_key(info) for info in frag_of.values()}
    left = {port: egress_index(pkts, keys) for port, pkts in egress.items()}
    # Fragments: unchanged copies first (all of them, so that a re-fragmented or duplicate
    # fragment cannot take another's), then what the re-fragmented output covers.
    verdicts = {i: left_exact(frames[i], left[peer[frames[i].port]][1]) for i in frag_of}
    for i, info in frag_of.items():
        if not verdicts[i]:
            verdicts[i] = left_covered(frames[i], info, left[peer[frames[i].port]][2])
    rows = []
    for i, p in enumerate(frames):
        whole = left[peer[p.port]][0]
        if i in frag_of:
            verdict = "accept" if verdicts[i] else "drop"
            if (verdict == "accept" and states.get(i) is None
                    and datagram_key(frag_of[i]) not in dgrams):
                problems.append(f"packet {i}: a fragment forwarded, its datagram not logged")
        else:
            k = pcapng.flow_key(p.linktype, p.data)
            verdict = "accept" if whole.pop(k, 0) else "drop"
            if (verdict == "accept" and states[i] is None
                    and pcapng.ip_info(p.linktype, p.data)):
                problems.append(f"packet {i}: forwarded but not logged by FORWARD")
        rows.append({"index": i, "port": p.port, "ctstate": states.get(i), "verdict": verdict})
    return rows, problems


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

