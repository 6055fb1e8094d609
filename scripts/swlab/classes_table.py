"""`swlab classes-table DIR REPLAY.jsonl`: the Markdown table of docs/malformed-classes.md.

DIR is tests/scenarios/malformed-classes (its classes.txt names each class, in the order
its frames come; the established connection's segments are between them), REPLAY.jsonl is
`statewall replay` over its capture with its rules imported. One row per class: the kernel's
ctstate and verdict (kernel.jsonl) and statewall's, with the reason statewall counted.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d, replay = argv
    names = open(os.path.join(d, "classes.txt")).read().splitlines()
    kernel = [json.loads(x) for x in open(os.path.join(d, "kernel.jsonl"))]
    mine = [json.loads(x) for x in open(replay)]
    # The frames: 3 of the handshake, then the classes with two segments of the connection
    # after every 8th class.
    at, rows = 3, []
    for i, name in enumerate(names):
        k, m = kernel[at], mine[at]
        same = (k["ctstate"], k["verdict"]) == (m["ctstate"], m["verdict"])
        rows.append(f"| {i + 1} | {name} | {k['ctstate'] or '-'} / {k['verdict']} | "
                    f"{m['ctstate'] or '-'} / {m['verdict']} | {m['reason']} | "
                    f"{'yes' if same else '**no**'} |")
        at += 1
        if i % 8 == 7:
            at += 2
    print("| # | class | kernel: ctstate / verdict | statewall | statewall's reason | same |")
    print("|---:|---|---|---|---|---|")
    print("\n".join(rows))
    return 0
