"""`swlab random [--first N] [--count N] [--out DIR]`: seeded random differential scenarios.

Scenario `rand-NNNN` is made from seed NNNN alone (the same seed gives the same bytes): a
small random ruleset (state rules in their several spellings, `! --state`, multiport lists
and ranges, `--syn`, `--tcp-flags`, ICMP types, physdev ports, UDP port ranges, raw
NOTRACK, policy DROP or ACCEPT), random conntrack sysctls (tcp_loose, tcp_be_liberal,
checksum), and traffic from a few actors:

- TCP conversations as random walks: a handshake (or SYN alone, retransmitted, the server
  opening, a simultaneous open, data before any handshake), then segments with flag,
  sequence, acknowledgement and window mutations near the window's edges and across 2^32
  (initial sequence numbers near the wrap), SYN on an established connection, RST in and out
  of the window, FIN, and flag combinations the kernel calls INVALID;
- UDP requests with replies from the right port and from another one;
- ICMP echo requests and replies (matching and not), and ICMP errors quoting a packet of a
  live conversation or of none;
- now and then the same over IPv6 with ip6tables rules.

The files are a scenario's (packets.pcapng, rules.iptables, sysctl.conf), written to
tests/scenarios-random/NAME/ (or DIR); `swlab kernel` records the kernel's answers, and
`cargo test -p statewall-engine --test kernel_scenarios every_random_scenario` replays each
through the engine and requires the kernel's ctstate and verdict for every packet.
"""

from __future__ import annotations

import os
import random
import sys

from . import RAND_DIR
from .dsl import C4, C6, R4, S4, S6, Scenario, Tcp, echo, icmp_error, scapy, udp

WRAP = 1 << 32

# Services the rules and the traffic choose from, so that rules often apply.
TCP_PORTS = [22, 80, 443, 8080, 5000, 5001]
UDP_PORTS = [53, 123, 5000, 5353, 9999]
BAD_FLAGS = ["F", "SF", "SR", "U", "FPU", "SFR", "", "FR", "SFPU"]


def rules(rng: random.Random, sc: Scenario) -> tuple[list[str], list[int]]:
    """A random IPv4 filter FORWARD (policy set on sc) and raw table, and the TCP ports it
    opens to new connections from the client (the walks go there more often than not)."""
    out: list[str] = []
    opened = rng.sample(TCP_PORTS, rng.randint(1, 3))
    ports = ",".join(str(x) for x in sorted(opened))
    tail = rng.choice(["-m conntrack --ctstate NEW -j ACCEPT", "-m tcp --syn -j ACCEPT",
                       "-j ACCEPT"])
    out.append(f"-A FORWARD -m physdev --physdev-in lan -p tcp -m multiport --dports {ports} "
               f"{tail}")
    if rng.random() < 0.6:
        out.append("-A FORWARD -m conntrack --ctstate INVALID -j DROP")
    state = rng.choice([
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -m conntrack ! --ctstate NEW,INVALID,UNTRACKED -j ACCEPT",
        "-A FORWARD -m state --state ESTABLISHED -j ACCEPT",
    ] + [None] * (rng.random() < 0.1))
    if state:
        out.insert(rng.randint(0, len(out)), state)
    for _ in range(rng.randint(1, 4)):
        side = rng.choice(["lan", "wan"])
        phys = f"-m physdev --physdev-in {side} " if rng.random() < 0.5 else ""
        p = rng.sample(TCP_PORTS, rng.randint(1, 3))
        kind = rng.randrange(9)
        if kind == 0:
            ports = ",".join(str(x) for x in sorted(p))
            out.append(f"-A FORWARD {phys}-p tcp -m multiport --dports {ports} -j ACCEPT")
        elif kind == 1:
            lo = rng.choice(TCP_PORTS)
            out.append(f"-A FORWARD {phys}-p tcp -m multiport --dports {lo}:{lo + 100},22 "
                       "-m conntrack --ctstate NEW -j ACCEPT")
        elif kind == 2:
            out.append(f"-A FORWARD {phys}-p tcp -m tcp --dport {p[0]} --tcp-flags "
                       "FIN,SYN,RST,ACK SYN -j ACCEPT")
        elif kind == 3:
            mask, comp = rng.choice([("SYN,RST", "SYN,RST"), ("FIN,SYN", "FIN,SYN"),
                                     ("ALL", "NONE"), ("ALL", "FIN,PSH,URG"),
                                     ("SYN,ACK", "ACK")])
            out.append(f"-A FORWARD -p tcp -m tcp --tcp-flags {mask} {comp} -j DROP")
        elif kind == 4:
            lo = rng.choice(UDP_PORTS)
            out.append(f"-A FORWARD {phys}-p udp -m udp --dport {lo}:{lo + rng.randint(0, 50)}"
                       " -j ACCEPT")
        elif kind == 5:
            t = rng.choice(["echo-request", "8", "echo-reply", "destination-unreachable",
                            "3/3", "time-exceeded", "any"])
            neg = "! " if rng.random() < 0.2 else ""
            out.append(f"-A FORWARD -p icmp -m icmp {neg}--icmp-type {t} -j ACCEPT")
        elif kind == 6:
            out.append(f"-A FORWARD {phys}-m state ! --state NEW -j ACCEPT")
        elif kind == 7:
            out.append("-A FORWARD -p tcp -m conntrack --ctstate NEW -m tcp ! --syn -j DROP")
        else:
            ports = ",".join(str(x) for x in sorted(p))
            out.append(f"-A FORWARD {phys}-p tcp -m multiport ! --sports {ports} "
                       "-m conntrack --ctstate ESTABLISHED -j ACCEPT")
    sc.policy = rng.choice(["DROP", "DROP", "ACCEPT"])
    if rng.random() < 0.25:
        port = rng.choice(UDP_PORTS + TCP_PORTS)
        proto = "udp" if port in UDP_PORTS else "tcp"
        target = rng.choice(["-j CT --notrack", "-j NOTRACK"])
        sc.raw4 = [f"-A PREROUTING -p {proto} -m {proto} --dport {port} {target}"]
    return out, opened


class Walk:
    """One actor's TCP conversation as a random walk."""

    def __init__(self, rng: random.Random, sc: Scenario, cport: int, v6: bool,
                 opened: list[int]):
        self.rng = rng
        near_wrap = rng.random() < 0.3
        isn = (lambda: WRAP - rng.randint(1, 70_000)) if near_wrap else (
            lambda: rng.randrange(WRAP))
        sport = rng.choice(opened if rng.random() < 0.7 else TCP_PORTS)
        self.t = Tcp(sc, cport=cport, sport=sport, v6=v6, cisn=isn(),
                     sisn=isn(), cwin=rng.choice([64240, 29200, 1024, 65535]),
                     swin=rng.choice([65160, 28960, 512, 65535]))
        self.what: list[str] = []

    def opening(self):
        t, rng = self.t, self.rng
        kind = rng.randrange(7)
        if kind <= 2:
            t.handshake()
            self.what.append("handshake")
        elif kind == 3:
            t.seg("c", "S")
            t.seg("c", "S", seq=t.nxt["c"] - 1, advance=False)
            self.what.append("SYN retransmitted")
        elif kind == 4:
            t.seg("s", "S")
            t.seg("c", "SA")
            t.seg("s", "A")
            self.what.append("server opens")
        elif kind == 5:
            t.seg("c", "S")
            t.seg("s", "S")
            t.seg("c", "SA", seq=t.nxt["c"] - 1, advance=False)
            t.seg("s", "SA", seq=t.nxt["s"] - 1, advance=False)
            self.what.append("simultaneous open")
        else:
            t.seg("c", "PA", b"before any handshake")
            self.what.append("data first")

    def step(self, i: int):
        t, rng = self.t, self.rng
        side = rng.choice("cs")
        o = "s" if side == "c" else "c"
        kind = rng.randrange(12)
        data = f"step {i}".encode()
        if kind <= 2:
            t.seg(side, "PA", data)
        elif kind == 3:
            t.seg(side, "A")
        elif kind == 4:
            off = rng.choice([t.win[o] - 1, t.win[o], t.win[o] + 1, -1, -len(data),
                              -65536, 1 << 31, (1 << 31) + 1, 70_000])
            t.seg(side, "PA", data, seq=t.nxt[side] + off, advance=False)
            self.what.append(f"seq{off:+d}")
        elif kind == 5:
            off = rng.choice([1, -1, 100, -70_000, 1 << 31, 1 << 20])
            t.seg(side, "A", ack=t.nxt[o] + off)
            self.what.append(f"ack{off:+d}")
        elif kind == 6:
            t.seg(side, "PA", data, win=rng.choice([0, 1, 65535]))
        elif kind == 7:
            off = rng.choice([0, 0, 1, t.win[o] + 1, 1 << 31])
            t.seg(side, rng.choice(["R", "RA"]), seq=t.nxt[side] + off, advance=False)
            self.what.append(f"RST{off:+d}")
        elif kind == 8:
            t.seg(side, "S", seq=rng.randrange(WRAP), advance=False)
            self.what.append("SYN again")
        elif kind == 9:
            t.seg(side, "FA")
            self.what.append("FIN")
        elif kind == 10:
            flags = rng.choice(BAD_FLAGS)
            t.seg(side, flags, advance=False, seq=t.nxt[side])
            self.what.append(f"flags {flags or 'none'}")
        else:
            t.seg(side, "PA", data, gap=0.001)

    def quote(self):
        """A packet of this conversation, as sent by the client (for an ICMP error)."""
        return self.t.seg("c", "PA", b"quoted", build_only=True)


def build(seed: int) -> Scenario:
    rng = random.Random(seed)
    sc = Scenario(f"rand-{seed:04d}", "")
    what: list[str] = []
    for key, values in (("tcp_loose", (0,)), ("tcp_be_liberal", (1,)), ("checksum", (0,))):
        if rng.random() < 0.2:
            sc.sysctl[key] = values[0]
            what.append(f"{key}={values[0]}")
    sc.filter4, opened = rules(rng, sc)
    v6 = rng.random() < 0.2
    if v6:
        sc.filter6 = ["-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                      "-A FORWARD -p tcp -m multiport --dports 22,80,443 -j ACCEPT",
                      "-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT"]
    walks: list[Walk] = []
    port = 40000 + rng.randrange(1000) * 10
    actors = rng.randint(2, 5)
    for a in range(actors):
        kind = rng.randrange(10)
        fam6 = v6 and rng.random() < 0.4
        if kind <= 4:
            w = Walk(rng, sc, port + a, fam6, opened)
            w.opening()
            for i in range(rng.randint(1, 8)):
                w.step(i)
            walks.append(w)
            what.append(f"tcp{'6' if fam6 else ''} {w.t.port['s']} ({', '.join(w.what)})")
        elif kind <= 6:
            dport = rng.choice(UDP_PORTS)
            sport = port + a
            sc.send("c", udp("c", sport, dport, b"request", v6=fam6))
            if rng.random() < 0.7:
                sc.send("s", udp("s", dport, sport, b"reply", v6=fam6))
            if rng.random() < 0.3:
                sc.send("s", udp("s", dport + 1, sport, b"other port", v6=fam6))
            if rng.random() < 0.4:
                sc.send("c", udp("c", sport, dport, b"again", v6=fam6))
            what.append(f"udp{'6' if fam6 else ''} {dport}")
        elif kind <= 8:
            ident = rng.randrange(1, 65536)
            sc.send("c", echo("c", ident, 1, v6=fam6))
            if rng.random() < 0.7:
                rid = ident if rng.random() < 0.8 else ident ^ 0x55
                sc.send("s", echo("s", rid, 1, reply=True, v6=fam6))
            what.append(f"echo{'6' if fam6 else ''}")
        else:
            live = walks and rng.random() < 0.7
            if live:
                w = rng.choice([w for w in walks if not w.t.v6] or walks)
                quoted = w.quote()
                v6e = w.t.v6
            else:
                s = scapy()
                v6e = False
                quoted = (s.IP(src=C4, dst=S4) / s.UDP(sport=port + a, dport=4444)
                          / s.Raw(b"dead"))
            src = rng.choice([S6 if v6e else S4] + ([] if v6e else [R4]))
            typ, code = rng.choice([(3, 3), (3, 1), (11, 0), (3, 4)]) if not v6e else (1, 4)
            sc.send("s", icmp_error(src, C6 if v6e else C4, quoted, typ=typ, code=code,
                                    v6=v6e))
            what.append(f"icmp error ({'live' if live else 'dead'} tuple)")
    sc.doc = f"seed {seed}: {'; '.join(what)}; policy {sc.policy}"
    return sc


def main(argv: list[str]) -> int:
    first, count, out = 1, 200, RAND_DIR
    it = iter(argv)
    for a in it:
        if a == "--first":
            first = int(next(it))
        elif a == "--count":
            count = int(next(it))
        elif a == "--out":
            out = next(it)
        else:
            print(f"swlab random: unknown argument {a!r}", file=sys.stderr)
            return 2
    os.makedirs(out, exist_ok=True)
    for seed in range(first, first + count):
        sc = build(seed)
        sc.write(out)
    print(f"swlab random: {count} scenarios (seeds {first}..{first + count - 1}) in {out}",
          file=sys.stderr)
    return 0
