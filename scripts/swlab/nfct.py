"""Parse connection-table lines in the format of the kernel's /proc/net/nf_conntrack.

    scripts/swlab nfct [FILE]     one JSON object per entry on stdout (stdin without FILE)

The same parser reads the kernel's own /proc/net/nf_conntrack and `statewallctl conntrack
list` / `statewall replay --conntrack` output, so a script written against the kernel keeps
working on statewall (scripts/test-control.sh checks both). A line is

    ipv4     2 tcp      6 431999 ESTABLISHED src=.. dst=.. sport=.. dport=.. [UNREPLIED]
        src=.. dst=.. sport=.. dport=.. [ASSURED] helper=ftp mark=0 zone=0 use=2

(one line): L3 name and number, L4 name and number, seconds left, the TCP state (TCP only),
the original tuple, [UNREPLIED] when no reply was seen, the reply tuple, then flags in
brackets and key=value extras (mark, zone, use, helper, secctx, packets/bytes with
accounting on, ...). ICMP tuples have type=, code=, id= instead of ports. Addresses come out
in their canonical text form (the kernel prints IPv6 addresses in full).

Each object: {"family", "l3num", "proto", "protonum", "timeout", "state" (null for non-TCP),
"orig": {"src", "dst", "sport", "dport"} or {"src", "dst", "type", "code", "id"}, "reply",
"flags": ["UNREPLIED", "ASSURED", ...], "extra": {"mark": "0", ...}, "orig_counters" /
"reply_counters" when accounting printed packets= and bytes=}. A malformed line is an error
naming its line number (exit 1).
"""

from __future__ import annotations

import ipaddress
import json
import sys

TUPLE_KEYS = ("src", "dst", "sport", "dport", "type", "code", "id")
INT_KEYS = ("sport", "dport", "type", "code", "id")


class ParseError(ValueError):
    pass


def parse_line(line: str) -> dict:
    """One entry; raises ParseError on anything that is not an nf_conntrack line."""
    tok = line.split()
    if len(tok) < 6:
        raise ParseError(f"too few fields ({len(tok)})")
    family, l3num, proto, protonum, timeout = tok[:5]
    if family not in ("ipv4", "ipv6"):
        raise ParseError(f"unknown L3 protocol {family!r}")
    for name, v in (("L3 number", l3num), ("L4 number", protonum), ("timeout", timeout)):
        if not v.isdigit():
            raise ParseError(f"{name} {v!r} is not a number")
    if (family, l3num) not in (("ipv4", "2"), ("ipv6", "10")):
        raise ParseError(f"{family} with L3 number {l3num}")
    rest = tok[5:]
    state = None
    if rest and "=" not in rest[0] and not rest[0].startswith("["):
        state = rest.pop(0)
        if not state.replace("_", "").isalpha() or not state.isupper():
            raise ParseError(f"bad state {state!r}")
    tuples: list[dict] = []
    counters: list[dict] = []
    flags: list[str] = []
    extra: dict[str, str] = {}
    for t in rest:
        if t.startswith("[") and t.endswith("]"):
            flags.append(t[1:-1])
            continue
        if "=" not in t:
            raise ParseError(f"unexpected field {t!r}")
        k, v = t.split("=", 1)
        if k == "src":
            if len(tuples) == 2:
                raise ParseError("more than two tuples")
            tuples.append({})
            counters.append({})
        if k in TUPLE_KEYS and tuples and len(extra) == 0 and k not in tuples[-1]:
            if k in ("src", "dst"):
                try:
                    v = str(ipaddress.ip_address(v))
                except ValueError as e:
                    raise ParseError(f"{k}={v}: {e}") from None
                tuples[-1][k] = v
            else:
                if not v.isdigit():
                    raise ParseError(f"{k}={v} is not a number")
                tuples[-1][k] = int(v)
        elif k in ("packets", "bytes") and tuples and not extra:
            if not v.isdigit():
                raise ParseError(f"{k}={v} is not a number")
            counters[-1][k] = int(v)
        else:
            extra[k] = v
    if len(tuples) != 2:
        raise ParseError(f"{len(tuples)} tuple(s), expected original and reply")
    for name, tp in zip(("original", "reply"), tuples, strict=True):
        if "src" not in tp or "dst" not in tp:
            raise ParseError(f"{name} tuple without src/dst")
        if ("sport" in tp) != ("dport" in tp):
            raise ParseError(f"{name} tuple with one port")
    if proto == "tcp" and state is None:
        raise ParseError("tcp entry without a state")
    entry = {
        "family": family,
        "l3num": int(l3num),
        "proto": proto,
        "protonum": int(protonum),
        "timeout": int(timeout),
        "state": state,
        "orig": tuples[0],
        "reply": tuples[1],
        "flags": flags,
        "extra": extra,
    }
    if any(counters):
        entry["orig_counters"], entry["reply_counters"] = counters
    return entry


def parse(lines) -> list[dict]:
    """Every non-empty line; ParseError names the (1-based) line."""
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(parse_line(line))
        except ParseError as e:
            raise ParseError(f"line {n}: {e}: {line.strip()}") from None
    return out


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (len(argv) == 1 and argv[0] in ("-h", "--help")):
        print(__doc__.strip())
        return 0 if len(argv) == 1 else 2
    f = open(argv[0], encoding="utf-8") if argv else sys.stdin
    try:
        entries = parse(f)
    except ParseError as e:
        print(f"swlab nfct: {e}", file=sys.stderr)
        return 1
    for e in entries:
        print(json.dumps(e, sort_keys=True))
    return 0

