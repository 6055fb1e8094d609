"""IPv6: TCP, UDP, ICMPv6 echo and errors, neighbour discovery, extension headers."""

from __future__ import annotations

from ..dsl import (
    ALLOW_HTTP6,
    C6,
    CMAC,
    R6,
    S6,
    SMAC,
    Tcp,
    bad_l4_csum,
    data_exchange,
    echo,
    icmp_error,
    scapy,
    scenario,
    udp,
)


@scenario
def ipv6_tcp(sc):
    """IPv6: handshake, data both ways, FIN close; a SYN to a port the rules do not allow."""
    sc.stateful(allow6=(ALLOW_HTTP6,))
    t = Tcp(sc, v6=True)
    t.handshake()
    data_exchange(t)
    t.seg("c", "FA")
    t.seg("s", "FA")
    t.seg("c", "A")
    Tcp(sc, v6=True, cport=40001, sport=81).seg("c", "S")


@scenario
def ipv6_udp(sc):
    """IPv6 UDP request/reply, an unreplied flow, and an ICMPv6 port unreachable quoting it (RELATED)."""
    sc.stateful(allow6=("-A FORWARD -s fd00::2/128 -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT",))
    sc.send("c", udp("c", 33070, 53, b"q", v6=True))
    sc.send("s", udp("s", 53, 33070, b"a", v6=True))
    q = udp("c", 33071, 53, b"q2", v6=True)
    sc.send("c", q)
    sc.send("s", icmp_error(S6, C6, q, 1, 4, v6=True))
    sc.send("s", icmp_error(S6, C6, udp("c", 33072, 53, b"never", v6=True), 1, 4, v6=True))


@scenario
def icmpv6_echo(sc):
    """ICMPv6 echo request/reply, a second pair, an unsolicited reply (INVALID)."""
    sc.stateful(allow6=("-A FORWARD -s fd00::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT",))
    sc.send("c", echo("c", 60, 1, v6=True))
    sc.send("s", echo("s", 60, 1, reply=True, v6=True))
    sc.send("c", echo("c", 60, 2, v6=True))
    sc.send("s", echo("s", 60, 2, reply=True, v6=True))
    sc.send("s", echo("s", 61, 1, reply=True, v6=True))


@scenario
def ipv6_ndp(sc):
    """Neighbour solicitation and advertisement (UNTRACKED), accepted by ICMPv6 type rules; a router solicitation (UNTRACKED, dropped)."""
    s = scapy()
    sc.stateful(allow6=(
        "-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT",
        "-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT",
    ))
    sc.send("c", s.IPv6(src=C6, dst="ff02::1:ff00:3", hlim=255) / s.ICMPv6ND_NS(tgt=S6)
            / s.ICMPv6NDOptSrcLLAddr(lladdr=CMAC))
    sc.send("s", s.IPv6(src=S6, dst=C6, hlim=255) / s.ICMPv6ND_NA(tgt=S6, R=0, S=1, O=1)
            / s.ICMPv6NDOptDstLLAddr(lladdr=SMAC))
    sc.send("c", s.IPv6(src="fe80::12", dst="ff02::2", hlim=255) / s.ICMPv6ND_RS()
            / s.ICMPv6NDOptSrcLLAddr(lladdr=CMAC))


@scenario
def ipv6_untracked_ndp_accepted(sc):
    """Neighbour discovery accepted by an UNTRACKED rule, echo through the stateful rules."""
    s = scapy()
    sc.stateful(allow6=(
        "-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT",
        "-A FORWARD -s fd00::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT",
    ))
    sc.send("s", s.IPv6(src=S6, dst="ff02::1:ff00:2", hlim=255) / s.ICMPv6ND_NS(tgt=C6)
            / s.ICMPv6NDOptSrcLLAddr(lladdr=SMAC))
    sc.send("c", s.IPv6(src=C6, dst=S6, hlim=255) / s.ICMPv6ND_NA(tgt=C6, R=0, S=1, O=1)
            / s.ICMPv6NDOptDstLLAddr(lladdr=CMAC))
    sc.send("c", echo("c", 62, 1, v6=True))
    sc.send("s", echo("s", 62, 1, reply=True, v6=True))


@scenario
def ipv6_ext_headers(sc):
    """IPv6 extension headers: a TCP handshake through hop-by-hop and destination options, UDP after destination options, ICMPv6 echo after both."""
    s = scapy()
    sc.stateful(allow6=(
        ALLOW_HTTP6,
        "-A FORWARD -s fd00::2/128 -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT",
        "-A FORWARD -s fd00::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT",
    ))
    t = Tcp(sc, v6=True, ext={"c": s.IPv6ExtHdrHopByHop, "s": s.IPv6ExtHdrDestOpt})
    t.handshake()
    t.seg("c", "PA", b"through options\n")
    t.seg("s", "A")
    sc.send("c", s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrDestOpt() / s.UDP(sport=33080, dport=53)
            / s.Raw(b"q"))
    sc.send("s", s.IPv6(src=S6, dst=C6) / s.IPv6ExtHdrHopByHop() / s.IPv6ExtHdrDestOpt()
            / s.UDP(sport=53, dport=33080) / s.Raw(b"a"))
    sc.send("c", echo("c", 63, 1, v6=True, ext=s.IPv6ExtHdrHopByHop() / s.IPv6ExtHdrDestOpt()))
    sc.send("s", echo("s", 63, 1, reply=True, v6=True, ext=s.IPv6ExtHdrDestOpt()))


@scenario
def ipv6_bad_checksum(sc):
    """IPv6: a SYN with a bad TCP checksum and a UDP datagram with a bad checksum (INVALID), then the good SYN."""
    sc.stateful(allow6=(ALLOW_HTTP6,
                        "-A FORWARD -s fd00::2/128 -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT"))
    t = Tcp(sc, v6=True)
    t.seg("c", "S", advance=False, mangle=bad_l4_csum)
    sc.send("c", udp("c", 33090, 53, b"q", v6=True), mangle=bad_l4_csum)
    t.handshake()


@scenario
def icmpv6_error_related_tcp(sc):
    """IPv6: a packet too big and a time exceeded from a router about an established TCP flow (RELATED), one about nothing (INVALID)."""
    s = scapy()
    sc.stateful(allow6=(ALLOW_HTTP6,))
    t = Tcp(sc, v6=True)
    t.handshake()
    d = t.seg("c", "PA", b"x" * 300)
    sc.send("s", s.IPv6(src=R6, dst=C6) / s.ICMPv6PacketTooBig(mtu=1280) / s.Raw(bytes(d)[:1232]))
    sc.send("s", icmp_error(R6, C6, d, 3, 0, v6=True))
    other = Tcp(sc, v6=True, cport=40999).seg("c", "S", build_only=True)
    sc.send("s", icmp_error(R6, C6, other, 3, 0, v6=True))
    t.seg("s", "A")
