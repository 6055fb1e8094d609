"""Read `statewall replay` output beside a capture: compare it with the kernel, or print it.

  compare KERNEL.jsonl REPLAY.jsonl [--capture FILE.pcapng] [--all]
      Compare ctstate and verdict per packet with the kernel's recorded answers (written by
      scripts/capture-lab.sh or `swlab kernel`). Prints a table of the packets that
      differ (--all: of every packet, differences marked `<<`) and exits 1 when any does (or
      when the packet counts or ports differ).
  table REPLAY.jsonl --capture FILE.pcapng
      A readable per-packet table (index, port, packet, verdict, ctstate, rule, reason) and
      accepted/dropped counts by ctstate.

REPLAY.jsonl is replay's stdout: one JSON object per packet; other lines are ignored. A
missing ctstate (non-IP frames) reads as null, as in the kernel file.
"""

from __future__ import annotations

import collections
import json
import sys

from . import pcapng


def load_jsonl(path: str) -> dict[int, dict]:
    out: dict[int, dict] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{lineno}: not JSON: {e}") from e
            if "index" not in obj:
                continue
            out[int(obj["index"])] = obj
    return out


def summaries(capture: str | None, short: bool = False) -> dict[int, str]:
    if not capture:
        return {}
    return {i: pcapng.summarize(p.linktype, p.data, short)
            for i, p in enumerate(pcapng.read_packets(capture))}


def s(v) -> str:
    return "-" if v is None else str(v)


def compare(kernel_path: str, replay_path: str, capture: str | None,
            all_rows: bool = False) -> int:
    kernel = load_jsonl(kernel_path)
    replay = load_jsonl(replay_path)
    summ = summaries(capture, short=all_rows)
    if not kernel:
        print(f"verdicts: {kernel_path} has no packets", file=sys.stderr)
        return 1
    if not replay:
        print(f"verdicts: replay printed no packets ({replay_path})", file=sys.stderr)
        return 1
    bad = []
    for i in sorted(set(kernel) | set(replay)):
        k, r = kernel.get(i), replay.get(i)
        why = []
        if k is None:
            why.append("not in the kernel's answers")
        elif r is None:
            why.append("missing from replay")
        else:
            if k.get("port") != r.get("port"):
                why.append("port")
            if k.get("ctstate") != r.get("ctstate"):
                why.append("ctstate")
            if k.get("verdict") != r.get("verdict"):
                why.append("verdict")
        if why or all_rows:
            bad.append((i, k or {}, r or {}, ", ".join(why)))
    total = len(kernel)
    if all_rows:
        return table_all(bad, summ, total)
    if not bad:
        print(f"verdicts: all {total} packets agree with the kernel (ctstate and verdict)")
        return 0
    print(f"verdicts: {len(bad)} of {total} packets differ from the kernel:")
    hdr = (f"{'idx':>4} {'port':4} {'kernel ctstate/verdict':24} {'replay ctstate/verdict':24} "
           f"{'rule':>4}  {'differs in':19} packet / replay reason")
    print(hdr)
    print("-" * len(hdr))
    for i, k, r, why in bad:
        kv = f"{s(k.get('ctstate'))}/{s(k.get('verdict'))}"
        rv = f"{s(r.get('ctstate'))}/{s(r.get('verdict'))}"
        print(f"{i:>4} {s(k.get('port') or r.get('port')):4} {kv:24} {rv:24} "
              f"{s(r.get('rule')):>4}  {why:19} {summ.get(i, '')}")
        if r.get("reason"):
            print(f"{'':>4} {'':4} {'':24} {'':24} {'':>4}  {'':19} reason: {r['reason']}")
    return 1


def table_all(rows, summ: dict[int, str], total: int) -> int:
    """Every packet: kernel and statewall side by side, differences marked."""
    width = min(max((len(v) for v in summ.values()), default=20), 64)
    hdr = (f"{'idx':>4} {'port':4} {'packet':{width}} {'kernel':23} {'statewall':23} "
           f"{'rule':>4}")
    print(hdr)
    print("-" * len(hdr))
    ndiff = 0
    for i, k, r, why in rows:
        kv = f"{s(k.get('ctstate'))}/{s(k.get('verdict'))}"
        rv = f"{s(r.get('ctstate'))}/{s(r.get('verdict'))}"
        pkt = summ.get(i, "")
        if len(pkt) > width:
            pkt = pkt[: width - 1] + "…"
        mark = ""
        if why:
            ndiff += 1
            mark = f"  << {why}" + (f" (reason: {r['reason']})" if r.get("reason") else "")
        print(f"{i:>4} {s(k.get('port') or r.get('port')):4} {pkt:{width}} {kv:23} {rv:23} "
              f"{s(r.get('rule')):>4}{mark}")
    if ndiff:
        print(f"verdicts: {ndiff} of {total} packets differ from the kernel")
        return 1
    print(f"verdicts: all {total} packets agree with the kernel (ctstate and verdict)")
    return 0


def table(replay_path: str, capture: str) -> int:
    replay = load_jsonl(replay_path)
    summ = summaries(capture, short=True)
    if not replay:
        print("verdicts: replay printed no packets", file=sys.stderr)
        return 1
    width = max((len(v) for v in summ.values()), default=20)
    width = min(width, 72)
    hdr = (f"{'idx':>4} {'port':4} {'packet':{width}} {'verdict':7} {'ctstate':11} "
           f"{'rule':>4} reason")
    print(hdr)
    print("-" * len(hdr))
    counts: collections.Counter = collections.Counter()
    for i in sorted(replay):
        r = replay[i]
        pkt = summ.get(i, "?")
        if len(pkt) > width:
            pkt = pkt[: width - 1] + "…"
        print(f"{i:>4} {s(r.get('port')):4} {pkt:{width}} {s(r.get('verdict')):7} "
              f"{s(r.get('ctstate')):11} {s(r.get('rule')):>4} {s(r.get('reason'))}")
        counts[(s(r.get("ctstate")), s(r.get("verdict")))] += 1
    print()
    print(f"{'ctstate':12} {'accepted':>8} {'dropped':>8}")
    for st in sorted({c for c, _ in counts}):
        label = "(not IP)" if st == "-" else st
        print(f"{label:12} {counts[(st, 'accept')]:>8} {counts[(st, 'drop')]:>8}")
    acc = sum(n for (_, v), n in counts.items() if v == "accept")
    drop = sum(n for (_, v), n in counts.items() if v == "drop")
    print(f"{'total':12} {acc:>8} {drop:>8}   ({len(replay)} packets)")
    return 0


def main(argv: list[str]) -> int:
    # A terminal or log that is not UTF-8 gets escapes instead of a crash on "→".
    sys.stdout.reconfigure(errors="backslashreplace")
    capture = None
    if "--capture" in argv:
        i = argv.index("--capture")
        if i + 1 >= len(argv):
            print(__doc__, file=sys.stderr)
            return 2
        capture = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    all_rows = "--all" in argv
    argv = [a for a in argv if a != "--all"]
    if len(argv) == 3 and argv[0] == "compare":
        return compare(argv[1], argv[2], capture, all_rows)
    if len(argv) == 2 and argv[0] == "table" and capture:
        return table(argv[1], capture)
    print(__doc__, file=sys.stderr)
    return 2

