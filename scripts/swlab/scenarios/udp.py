"""UDP (replied, unreplied, streams, timeouts) and the generic tracker (IP protocol 253)."""

from __future__ import annotations

from ..dsl import ALLOW_UDP, C4, S4, scapy, scenario, udp


@scenario
def udp_replied(sc):
    """Request NEW, reply ESTABLISHED, then both directions ESTABLISHED."""
    sc.stateful(ALLOW_UDP)
    sc.send("c", udp("c", 33030, 53, b"q"))
    sc.send("s", udp("s", 53, 33030, b"a"))
    sc.send("c", udp("c", 33030, 53, b"q2"))
    sc.send("s", udp("s", 53, 33030, b"a2"))


@scenario
def udp_unreplied(sc):
    """Datagrams one way only stay NEW; the server's first datagram of another flow is NEW too and dropped."""
    sc.stateful(ALLOW_UDP)
    for i in range(3):
        sc.send("c", udp("c", 33020, 53, b"q%d" % i))
    sc.send("s", udp("s", 53, 33021, b"unasked"))
    sc.send("c", udp("c", 33022, 54, b"other port"))


@scenario
def udp_reply_other_port(sc):
    """UDP: a reply from another source port is a new flow; the same 5-tuple reversed is the reply."""
    sc.stateful(ALLOW_UDP)
    sc.send("c", udp("c", 33300, 53, b"q"))
    sc.send("s", udp("s", 5353, 33300, b"wrong port"))
    sc.send("s", udp("s", 53, 33300, b"right port"))
    sc.send("c", udp("c", 33300, 53, b"q2"))


@scenario
def udp_timeout(sc):
    """udp_timeout = 2: request and reply, 3.5 s of silence, then the server's datagram is a NEW flow (dropped) and the client's again NEW."""
    sc.stateful(ALLOW_UDP)
    sc.sysctl["udp_timeout"] = 2
    sc.send("c", udp("c", 33010, 53, b"q1"))
    sc.send("s", udp("s", 53, 33010, b"a1"))
    sc.send("s", udp("s", 53, 33010, b"a2"), gap=3.5)
    sc.send("c", udp("c", 33010, 53, b"q2"))
    sc.send("s", udp("s", 53, 33010, b"a3"))


@scenario
def udp_stream(sc):
    """udp_timeout = 2, udp_timeout_stream = 30: traffic both ways for more than 2 s makes a stream that survives 3 s of silence; a plain replied flow does not."""
    sc.stateful(ALLOW_UDP)
    sc.sysctl["udp_timeout"] = 2
    sc.sysctl["udp_timeout_stream"] = 30
    sc.send("c", udp("c", 33040, 53, b"s0"))
    sc.send("c", udp("c", 33041, 53, b"p0"))
    sc.send("s", udp("s", 53, 33040, b"s1"))
    sc.send("s", udp("s", 53, 33041, b"p1"))
    sc.send("c", udp("c", 33040, 53, b"s2"), gap=1.2)
    sc.send("s", udp("s", 53, 33040, b"s3"))
    sc.send("c", udp("c", 33040, 53, b"s4"), gap=1.2)
    sc.send("s", udp("s", 53, 33040, b"s5"))
    sc.send("s", udp("s", 53, 33040, b"s6"), gap=3.0)
    sc.send("s", udp("s", 53, 33041, b"p2"))


@scenario
def generic_protocol(sc):
    """IP protocol 253 (generic tracker, generic_timeout = 2): NEW, reply ESTABLISHED, after 3.5 s NEW again."""
    s = scapy()
    sc.stateful("-A FORWARD -s 10.10.0.2/32 -p 253 -m conntrack --ctstate NEW -j ACCEPT")
    sc.sysctl["generic_timeout"] = 2
    sc.send("c", s.IP(src=C4, dst=S4, proto=253) / s.Raw(b"generic-1"))
    sc.send("s", s.IP(src=S4, dst=C4, proto=253) / s.Raw(b"generic-2"))
    sc.send("c", s.IP(src=C4, dst=S4, proto=253) / s.Raw(b"generic-3"))
    sc.send("s", s.IP(src=S4, dst=C4, proto=253) / s.Raw(b"generic-4"), gap=3.5)
    sc.send("c", s.IP(src=C4, dst=S4, proto=253) / s.Raw(b"generic-5"))
