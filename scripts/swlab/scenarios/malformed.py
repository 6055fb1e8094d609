"""Bad checksums, truncated headers, IPv4 options."""

from __future__ import annotations

from ..dsl import (
    ALLOW_HTTP,
    ALLOW_UDP,
    C4,
    S4,
    Tcp,
    bad_ip_csum,
    bad_l4_csum,
    echo,
    scapy,
    scenario,
    set_doff,
    trunc_l4,
    u32,
    udp,
)


@scenario
def tcp_bad_checksum(sc):
    """Established; a data segment with a bad TCP checksum, then its good retransmission; a SYN with a bad checksum."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    t.seg("c", "PA", b"corrupted\n", advance=False, mangle=bad_l4_csum)
    t.seg("c", "PA", b"corrupted\n")
    t.seg("s", "A")
    Tcp(sc, cport=40200).seg("c", "S", mangle=bad_l4_csum)


@scenario
def checksum_off(sc):
    """nf_conntrack_checksum = 0: TCP and UDP with bad checksums are tracked like good ones."""
    sc.stateful(ALLOW_HTTP, ALLOW_UDP)
    sc.sysctl["checksum"] = 0
    t = Tcp(sc)
    t.seg("c", "S", mangle=bad_l4_csum)
    t.seg("s", "SA")
    t.seg("c", "A")
    t.seg("c", "PA", b"bad sum\n", mangle=bad_l4_csum)
    sc.send("c", udp("c", 33000, 53, b"query"), mangle=bad_l4_csum)
    sc.send("s", udp("s", 53, 33000, b"answer"))


@scenario
def udp_bad_checksum(sc):
    """UDP with a bad checksum (INVALID), with checksum 0 (none: valid over IPv4), then a reply."""
    sc.stateful(ALLOW_UDP)
    sc.send("c", udp("c", 33001, 53, b"bad"), mangle=bad_l4_csum)
    sc.send("c", udp("c", 33002, 53, b"nosum", chksum=0))
    sc.send("s", udp("s", 53, 33002, b"answer"))
    sc.send("c", udp("c", 33001, 53, b"good"))


@scenario
def ipv4_bad_header_checksum(sc):
    """A bad IPv4 header checksum (br_netfilter drops it before conntrack: no ctstate) on a SYN and a UDP datagram, then the good SYN."""
    sc.stateful(ALLOW_HTTP, ALLOW_UDP)
    t = Tcp(sc)
    t.seg("c", "S", advance=False, mangle=bad_ip_csum)
    sc.send("c", udp("c", 33003, 53, b"q"), mangle=bad_ip_csum)
    t.seg("c", "S")
    t.seg("s", "SA")
    t.seg("s", "A", mangle=bad_ip_csum, advance=False)
    t.seg("c", "A")


@scenario
def truncated_headers(sc):
    """TCP cut to 12 and to 2 bytes, a TCP data offset past the end and one below 5, UDP cut to 6 bytes, a UDP length beyond the datagram; then a good SYN and datagram."""
    sc.stateful(ALLOW_HTTP, ALLOW_UDP)
    t = Tcp(sc)
    t.seg("c", "S", advance=False, mangle=trunc_l4(12))
    t.seg("c", "S", advance=False, mangle=trunc_l4(2))
    t.seg("c", "S", advance=False, mangle=set_doff(15))
    t.seg("c", "S", advance=False, mangle=set_doff(3))
    sc.send("c", udp("c", 33004, 53, b"q"), mangle=trunc_l4(6))
    sc.send("c", udp("c", 33004, 53, b"query", len=40))
    t.seg("c", "S")
    sc.send("c", udp("c", 33004, 53, b"query"))


@scenario
def truncated_headers_accept_policy(sc):
    """ACCEPT policy, INVALID not dropped, a `-p tcp --dport 22 -j DROP` rule: truncated TCP and UDP headers meet port matches."""
    sc.policy = "ACCEPT"
    sc.filter4 = ["-A FORWARD -p tcp -m tcp --dport 22 -j DROP",
                  "-A FORWARD -p udp -m udp --dport 22 -j DROP"]
    sc.filter6 = []
    t = Tcp(sc)
    t.seg("c", "S", advance=False, mangle=trunc_l4(12))
    t.seg("c", "S", advance=False, mangle=set_doff(15))
    sc.send("c", udp("c", 33005, 53, b"q"), mangle=trunc_l4(6))
    t.seg("c", "S")
    t.seg("s", "SA")


@scenario
def truncated_icmp(sc):
    """ICMP cut to 2 bytes and an echo request cut to 6 bytes, against ACCEPT policy with an `--icmp-type` rule; then a whole echo request and reply."""
    sc.policy = "ACCEPT"
    sc.filter4 = ["-A FORWARD -p icmp -m icmp --icmp-type 13 -j DROP"]
    sc.filter6 = []
    sc.send("c", echo("c", 700, 1), mangle=trunc_l4(2))
    sc.send("c", echo("c", 700, 1), mangle=trunc_l4(6))
    sc.send("c", echo("c", 700, 2))
    sc.send("s", echo("s", 700, 2, reply=True))


@scenario
def ipv4_options(sc):
    """IPv4 headers with options (router alert, NOPs): the transport header starts after them; a handshake and a UDP exchange."""
    s = scapy()
    sc.stateful(ALLOW_HTTP, ALLOW_UDP)
    opts = [s.IPOption_Router_Alert(), s.IPOption_NOP(), s.IPOption_NOP(), s.IPOption_NOP(),
            s.IPOption_NOP()]
    t = Tcp(sc)
    for side, fl in (("c", "S"), ("s", "SA"), ("c", "A")):
        pkt = t.seg(side, fl, build_only=True)
        pkt[s.IP].options = opts
        sc.send(side, pkt)
        t.nxt[side] = u32(t.nxt[side] + (1 if "S" in fl else 0))
    sc.send("c", s.IP(src=C4, dst=S4, options=opts) / s.UDP(sport=33400, dport=53) / s.Raw(b"q"))
    sc.send("s", s.IP(src=S4, dst=C4, options=opts) / s.UDP(sport=53, dport=33400) / s.Raw(b"a"))
