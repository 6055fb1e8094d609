"""The differential scenarios (tests/scenarios/NAME/), one module per topic.

Each scenario is a function decorated with @scenario (swlab/dsl.py says how to write one) in
the module of its topic; a new topic is a new module, imported below. ORDER is the order
`swlab list` and `swlab generate` go through them (the order of tests/scenarios/README.md's
table); a scenario it does not name comes after those it names, in import order.

A module may set DEST, the directory its scenarios are written to (fragments.py:
tests/scenarios-fragments/); the others go to tests/scenarios/.
"""

from __future__ import annotations

import os
import sys

from .. import SCEN_DIR
from ..dsl import REGISTERED, doc_of, make, name_of
from . import (
    chains,
    classes,
    fragments,
    ftp,
    icmp,
    ipv6,
    log,
    malformed,
    marks,
    nft,
    rules,
    tcp_rst,
    tcp_state,
    tcp_timeout,
    tcp_window,
    tools,
    udp,
)

TOPICS = (tcp_state, tcp_rst, tcp_window, tcp_timeout, malformed, classes, udp, icmp, ipv6, rules, ftp,
          fragments, chains, nft, log, marks, tools)

ORDER = """
    tcp-handshake tcp-data-both-ways tcp-fin-close tcp-fin-simultaneous tcp-fin-server-first
    tcp-syn-on-time-wait tcp-retransmitted-syn tcp-simultaneous-open
    tcp-dropped-new-leaves-no-state tcp-rst-refused tcp-rst-exact tcp-rst-in-window
    tcp-rst-out-of-window tcp-rst-bad-seq-established tcp-rst-ignore-invalid
    tcp-window-edge-exact tcp-window-overshoot tcp-data-beyond-window tcp-ack-unsent-data
    tcp-window-scaling tcp-bad-flags tcp-flags-accepted tcp-bad-checksum checksum-off
    udp-bad-checksum ipv4-bad-header-checksum truncated-headers truncated-headers-accept-policy
    tcp-loose-on tcp-loose-off tcp-be-liberal tcp-timeout-established tcp-timeout-syn-sent
    udp-timeout udp-unreplied udp-replied udp-stream icmp-echo icmp-unsolicited-reply
    icmp-timeout generic-protocol icmp-error-related-udp icmp-error-related-tcp
    icmp-error-unrelated ipv6-tcp ipv6-udp icmpv6-echo ipv6-ndp ipv6-untracked-ndp-accepted
    ipv6-ext-headers ipv6-bad-checksum malformed-classes notrack-raw notrack-then-state-rules multiport
    negated-state ctdir policy-accept-invalid-passes ftp-pasv-helper ftp-pasv-no-helper
    ftp-epsv-helper ftp-port-helper ftp-port-no-helper ftp-eprt-helper ftp-eprt-no-helper
    ftp-ipv6-eprt-helper ftp-ipv6-epsv-helper ftp-ipv6-epsv-no-helper ftp-split-command
    ftp-first-segment-not-parsed tcp-max-retrans tcp-timeout-unacknowledged
    tcp-timeout-time-wait tcp-syn-in-established-resync tcp-ignored-ack-in-syn-sent
    tcp-synack-bad-ack tcp-rst-syn-sent tcp-zero-window tcp-sack tcp-wscale-one-side
    tcp-data-after-fin tcp-loose-pickup-window icmp-error-directions icmp-echo-mismatch
    icmpv6-error-related-tcp udp-reply-other-port truncated-icmp ipv4-options ftp-format-edges
    ftp-helper-other-port chains-gateway chains-goto-return input-rules-are-the-hosts nft-gateway
    nft-matches nft-packet-matches limit hashlimit packet-matches tcpmss-match ipset-match log-continues marks ufw-routed firewalld-zones
    docker-bridge shorewall-zones""".split()


def _ordered() -> list:
    rank = {n: i for i, n in enumerate(ORDER)}
    names = [name_of(f) for f in REGISTERED]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SystemExit(f"swlab: scenario(s) defined twice: {', '.join(sorted(dup))}")
    return sorted(REGISTERED, key=lambda f: rank.get(name_of(f), len(ORDER)))


SCENARIOS = _ordered()


def dest_of(fn) -> str:
    """The directory fn's scenario belongs in: its module's DEST, else tests/scenarios/."""
    return getattr(sys.modules[fn.__module__], "DEST", SCEN_DIR)


def cmd_generate(argv: list[str]) -> int:
    """generate [--out DIR] [NAME ...]: write the scenarios' files (all without NAME), each
    in its directory (dest_of), or all of them in DIR."""
    out, names = None, set()
    it = iter(argv)
    for a in it:
        if a == "--out":
            out = next(it, None)
            if not out:
                print("swlab generate: --out needs a directory", file=sys.stderr)
                return 2
        else:
            names.add(a)
    known = {name_of(f) for f in SCENARIOS}
    if names - known:
        print(f"unknown scenario(s): {', '.join(sorted(names - known))}", file=sys.stderr)
        return 2
    for fn in SCENARIOS:
        if not names or name_of(fn) in names:
            sc = make(fn)
            root = out or dest_of(fn)
            os.makedirs(root, exist_ok=True)
            sc.write(root)
            print(f"{sc.name}: {len(sc.frames)} packets", file=sys.stderr)
    return 0


def cmd_list(argv: list[str]) -> int:
    """list: the scenarios, one `NAME: description` line each."""
    if argv:
        print("swlab list: takes no arguments", file=sys.stderr)
        return 2
    for fn in SCENARIOS:
        print(f"{name_of(fn)}: {doc_of(fn)}")
    return 0
