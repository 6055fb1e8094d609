"""ICMP: echo (requests, replies, ids, timeout) and errors quoting tracked flows or none."""

from __future__ import annotations

from ..dsl import (
    ALLOW_HTTP,
    ALLOW_PING,
    ALLOW_UDP,
    C4,
    R4,
    S4,
    Tcp,
    echo,
    icmp_error,
    scapy,
    scenario,
    udp,
)


@scenario
def icmp_echo(sc):
    """Echo request NEW, reply ESTABLISHED, a second request/reply on the same id, a new id NEW."""
    sc.stateful(ALLOW_PING)
    sc.send("c", echo("c", 77, 1))
    sc.send("s", echo("s", 77, 1, reply=True))
    sc.send("c", echo("c", 77, 2))
    sc.send("s", echo("s", 77, 2, reply=True))
    sc.send("c", echo("c", 78, 1))
    sc.send("s", echo("s", 78, 1, reply=True))


@scenario
def icmp_unsolicited_reply(sc):
    """Echo replies with no request (INVALID); an echo request from the server side (NEW, not allowed)."""
    sc.stateful(ALLOW_PING)
    sc.send("s", echo("s", 90, 1, reply=True))
    sc.send("c", echo("c", 91, 1, reply=True))
    sc.send("s", echo("s", 92, 1))


@scenario
def icmp_echo_mismatch(sc):
    """An echo reply with another id than the request (INVALID), a reply from a third address, then the right reply."""
    s = scapy()
    sc.stateful(ALLOW_PING)
    sc.send("c", echo("c", 300, 1))
    sc.send("s", echo("s", 301, 1, reply=True))
    sc.send("s", s.IP(src="10.10.0.4", dst=C4) / s.ICMP(type=0, id=300, seq=1) / s.Raw(b"ping"))
    sc.send("s", echo("s", 300, 1, reply=True))


@scenario
def icmp_timeout(sc):
    """icmp_timeout = 2: request, reply, 3.5 s later a reply is unsolicited (INVALID) and a request NEW."""
    sc.stateful(ALLOW_PING)
    sc.sysctl["icmp_timeout"] = 2
    sc.send("c", echo("c", 80, 1))
    sc.send("s", echo("s", 80, 1, reply=True))
    sc.send("s", echo("s", 80, 2, reply=True), gap=3.5)
    sc.send("c", echo("c", 80, 3))
    sc.send("s", echo("s", 80, 3, reply=True))


@scenario
def icmp_error_related_udp(sc):
    """A UDP datagram, then the server's port unreachable quoting it (RELATED); a second error after the reply."""
    sc.stateful(ALLOW_UDP)
    q = udp("c", 33050, 53, b"query")
    sc.send("c", q)
    sc.send("s", icmp_error(S4, C4, q, 3, 3))
    sc.send("s", udp("s", 53, 33050, b"late answer"))
    sc.send("s", icmp_error(S4, C4, q, 3, 3))


@scenario
def icmp_error_related_tcp(sc):
    """A SYN, then a router's time exceeded quoting it (RELATED); fragmentation needed quoting established data."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    syn = t.seg("c", "S", advance=False)
    sc.send("s", icmp_error(R4, C4, syn, 11, 0))
    t.seg("c", "S")
    t.seg("s", "SA")
    t.seg("c", "A")
    d = t.seg("c", "PA", b"x" * 200)
    sc.send("s", icmp_error(R4, C4, d, 3, 4))


@scenario
def icmp_error_unrelated(sc):
    """ICMP errors quoting flows nobody opened (INVALID): port unreachable about UDP, time exceeded about TCP, and one quoting an echo request."""
    s = scapy()
    sc.stateful(ALLOW_UDP, "-A FORWARD -p icmp -j ACCEPT")
    sc.send("s", icmp_error(S4, C4, udp("c", 33060, 53, b"never sent"), 3, 3))
    sc.send("s", icmp_error(R4, C4, s.IP(src=C4, dst=S4, id=9) / s.TCP(sport=40500, dport=80,
                                                                          flags="S"), 11, 0))
    sc.send("c", icmp_error(C4, S4, s.IP(src=S4, dst=C4, id=10) / s.ICMP(type=8, id=5), 3, 1))


@scenario
def icmp_error_directions(sc):
    """ICMP errors about a tracked UDP flow: from the client about the server's reply, from a router to the wrong host, and an error quoting an ICMP echo."""
    sc.stateful(ALLOW_UDP, ALLOW_PING)
    q = udp("c", 33200, 53, b"q")
    sc.send("c", q)
    a = udp("s", 53, 33200, b"a")
    sc.send("s", a)
    sc.send("c", icmp_error(C4, S4, a, 3, 3))
    sc.send("c", icmp_error(R4, S4, q, 11, 0))
    e = echo("c", 500, 1)
    sc.send("c", e)
    sc.send("s", icmp_error(R4, C4, e, 11, 0))
    sc.send("s", icmp_error(R4, C4, icmp_error(S4, C4, q, 3, 3), 11, 0))
