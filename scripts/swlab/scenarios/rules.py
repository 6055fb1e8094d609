"""Rule constructs: raw-table notrack, multiport, negated states, --ctdir, ACCEPT policy."""

from __future__ import annotations

from ..dsl import (
    ALLOW_HTTP,
    ALLOW_UDP,
    C4,
    C6,
    S4,
    S6,
    Tcp,
    bad_l4_csum,
    echo,
    scapy,
    scenario,
    udp,
)


@scenario
def notrack_raw(sc):
    """raw PREROUTING notrack (CT --notrack and NOTRACK) for UDP port 5000 both ways: UNTRACKED, accepted by an UNTRACKED rule; a tracked flow beside it."""
    sc.raw4 = ["-A PREROUTING -p udp -m udp --dport 5000 -j CT --notrack",
               "-A PREROUTING -p udp -m udp --sport 5000 -j NOTRACK"]
    sc.stateful("-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT", ALLOW_UDP)
    sc.send("c", udp("c", 33100, 5000, b"u1"))
    sc.send("s", udp("s", 5000, 33100, b"u2"))
    sc.send("s", udp("s", 5001, 33100, b"u3"))
    sc.send("c", udp("c", 33101, 53, b"t1"))
    sc.send("s", udp("s", 53, 33101, b"t2"))


@scenario
def notrack_then_state_rules(sc):
    """notrack for TCP port 80: a handshake whose packets are all UNTRACKED, against rules that accept only NEW and ESTABLISHED."""
    sc.raw4 = ["-A PREROUTING -p tcp -m tcp --dport 80 -j CT --notrack",
               "-A PREROUTING -p tcp -m tcp --sport 80 -j CT --notrack"]
    sc.stateful(ALLOW_HTTP, "-A FORWARD -s 10.10.0.2/32 -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT")
    Tcp(sc).handshake()
    Tcp(sc, sport=8080, cport=40600).handshake()


@scenario
def multiport(sc):
    """-m multiport --dports 22,80,8000:8010 for NEW: SYNs to 22, 23, 80, 7999, 8000, 8005, 8010, 8011; UDP --sports list."""
    sc.stateful(
        "-A FORWARD -s 10.10.0.2/32 -p tcp -m multiport --dports 22,80,8000:8010 -m conntrack --ctstate NEW -j ACCEPT",
        "-A FORWARD -p udp -m multiport --sports 1000:1010,2000 -j ACCEPT")
    for i, port in enumerate((22, 23, 80, 7999, 8000, 8005, 8010, 8011)):
        t = Tcp(sc, cport=41000 + i, sport=port)
        t.seg("c", "S")
        t.seg("s", "SA")
    for sp in (999, 1000, 1010, 1011, 2000):
        sc.send("s", udp("s", sp, 33110, b"m"))


@scenario
def negated_state(sc):
    """`-m state ! --state` and `-m conntrack ! --ctstate`: accept all but NEW and INVALID, plus client UDP that is not INVALID."""
    s = scapy()
    sc.filter4 = ["-A FORWARD -m conntrack ! --ctstate NEW,INVALID -j ACCEPT",
                  "-A FORWARD -s 10.10.0.2/32 -p udp -m state ! --state INVALID -j ACCEPT"]
    sc.filter6 = []
    sc.send("c", udp("c", 33120, 53, b"q"))
    sc.send("s", udp("s", 53, 33120, b"a"))
    sc.send("s", udp("s", 53, 33121, b"unasked"))
    sc.send("s", echo("s", 93, 1, reply=True))
    sc.send("c", echo("c", 94, 1))
    sc.send("c", udp("c", 33122, 53, b"bad"), mangle=bad_l4_csum)
    sc.send("c", s.IP(src=C4, dst=S4, proto=253) / s.Raw(b"generic"))


@scenario
def ctdir(sc):
    """--ctdir ORIGINAL accepts the client's datagrams, --ctdir REPLY only replies from port 53; a server-opened flow is ORIGINAL too."""
    sc.filter4 = ["-A FORWARD -s 10.10.0.2/32 -p udp -m conntrack --ctdir ORIGINAL -j ACCEPT",
                  "-A FORWARD -p udp -m udp --sport 53 -m conntrack --ctdir REPLY -j ACCEPT"]
    sc.filter6 = []
    sc.send("c", udp("c", 33130, 53, b"q"))
    sc.send("s", udp("s", 53, 33130, b"a"))
    sc.send("c", udp("c", 33131, 54, b"q"))
    sc.send("s", udp("s", 54, 33131, b"a"))
    sc.send("s", udp("s", 53, 33132, b"server first"))
    sc.send("c", udp("c", 33132, 53, b"client reply"))
    sc.send("s", echo("s", 95, 1, reply=True))


@scenario
def policy_accept_invalid_passes(sc):
    """ACCEPT policy without an INVALID rule: INVALID packets pass and do not change the connection (a later packet still judged on the old window)."""
    sc.policy = "ACCEPT"
    sc.filter4 = ["-A FORWARD -s 10.10.0.3/32 -p tcp -m conntrack --ctstate NEW -j DROP"]
    sc.filter6 = []
    t = Tcp(sc, swin=1000)
    t.handshake()
    base = t.nxt["c"]
    t.seg("c", "PA", b"x" * 10, seq=base + 50_000)
    t.seg("c", "SF", advance=False, opts=[])
    t.seg("c", "PA", b"y" * 10)
    t.seg("s", "A")
    Tcp(sc, cport=40700, sport=80).seg("s", "S")


@scenario
def limit(sc):
    """-m limit: DNS queries at 2/sec with a burst of 3 (five at once: three accepted, then two more after 1.2 s, both within the rate again), ICMP at the default 3/hour burst 5 (seven pings: five accepted)."""
    sc.filter4 = ["-A FORWARD -p udp -m udp --dport 53 -m limit --limit 2/sec --limit-burst 3 -j ACCEPT",
                  "-A FORWARD -p icmp -m limit -j ACCEPT"]
    sc.filter6 = []
    for i in range(5):
        sc.send("c", udp("c", 33700 + i, 53, b"q"), gap=0.01)
    sc.wait(1.2)
    for i in range(2):
        sc.send("c", udp("c", 33710 + i, 53, b"later"), gap=0.01)
    for i in range(7):
        sc.send("c", echo("c", 200 + i, 1), gap=0.01)


@scenario
def packet_matches(sc):
    """Matches on each packet's own fields: ESTABLISHED accepted only up to 100 bytes (-m length: a 200-byte segment of an established flow is dropped, the small ACK after it accepted: no cached verdict), -m ttl --ttl-lt 5, -m mac --mac-source, -m pkttype broadcast and multicast, a UDP length range; ip6tables -m hl --hl-eq and --hl-gt."""
    sc.filter4 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m length --length 0:100 -j ACCEPT",
        "-A FORWARD -m ttl --ttl-lt 5 -j DROP",
        "-A FORWARD -m mac --mac-source 02:00:00:00:00:66 -j DROP",
        "-A FORWARD -m pkttype --pkt-type broadcast -j DROP",
        "-A FORWARD -p udp -m udp -m length --length 29:40 -j ACCEPT",
        "-A FORWARD -p udp -m pkttype --pkt-type multicast -j ACCEPT",
        "-A FORWARD -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT",
    ]
    sc.filter6 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -p ipv6-icmp -m hl --hl-eq 255 -j ACCEPT",
        "-A FORWARD -p ipv6-icmp -m hl --hl-gt 100 -j DROP",
        "-A FORWARD -p ipv6-icmp -j ACCEPT",
    ]
    packet_fields_traffic(sc, udp_base=33400, echo_seq=1)


def mac(dst=None, src=None):
    """A mangle (Scenario.send) that rewrites the frame's destination and source MACs."""
    def edit(frame: bytes) -> bytes:
        f = bytearray(frame)
        if dst:
            f[0:6] = bytes.fromhex(dst.replace(":", ""))
        if src:
            f[6:12] = bytes.fromhex(src.replace(":", ""))
        return bytes(f)
    return edit


def packet_fields_traffic(sc, udp_base: int, echo_seq: int):
    """The traffic of the packet-field scenarios (iptables' and nftables'): an HTTP flow with
    a 200-byte segment, UDP of two lengths, TTL 3, a foreign source MAC, a broadcast, a
    multicast, ICMPv6 echoes of hop limits 255, 200 and 64."""
    s = scapy()
    t = Tcp(sc)
    t.handshake()
    t.seg("c", "PA", data=b"GET / HTTP/1.0\r\n\r\n")
    t.seg("c", "PA", data=b"x" * 200)
    t.seg("c", "A")
    t.seg("s", "A")
    sc.send("c", udp("c", udp_base, 53, b"x"))
    sc.send("c", udp("c", udp_base + 1, 53, b"x" * 100))
    sc.send("c", s.IP(src=C4, dst=S4, ttl=3) / s.UDP(sport=udp_base + 2, dport=53) / s.Raw(b"x"))
    sc.send("c", udp("c", udp_base + 3, 53, b"x"), mangle=mac(src="02:00:00:00:00:66"))
    sc.send("c", udp("c", udp_base + 4, 53, b"x"), mangle=mac(dst="ff:ff:ff:ff:ff:ff"))
    sc.send("c", s.IP(src=C4, dst="224.0.0.251") / s.UDP(sport=5353, dport=5353)
            / s.Raw(b"m" * 100), mangle=mac(dst="01:00:5e:00:00:fb"))
    for hlim in (255, 200, 64):
        p = s.IPv6(src=C6, dst=S6, hlim=hlim) / s.ICMPv6EchoRequest(id=hlim, seq=echo_seq,
                                                                     data=b"hl")
        sc.send("c", p)


@scenario
def ipset_match(sc):
    """-m set against ipset's sets (ipset.save, restored first): a hash:net blocklist with a nomatch exception inside a listed network (the most specific network answers), a hash:ip allow list for the destination, an inet6 hash:net matched negated."""
    sc.ipset = [
        "create swblock hash:net family inet hashsize 1024 maxelem 65536",
        "add swblock 10.10.0.0/24",
        "add swblock 10.10.0.2 nomatch",
        "add swblock 192.0.2.0/24",
        "create swallow hash:ip family inet hashsize 1024 maxelem 65536",
        "add swallow 10.10.0.3",
        "create swnet6 hash:net family inet6 hashsize 1024 maxelem 65536",
        "add swnet6 fd00::/120",
    ]
    sc.filter4 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -m set --match-set swblock src -j DROP",
        "-A FORWARD -p udp -m set --match-set swallow dst -j ACCEPT",
        "-A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT",
    ]
    sc.filter6 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -m set ! --match-set swnet6 src -j DROP",
        "-A FORWARD -p ipv6-icmp -j ACCEPT",
    ]
    s = scapy()
    # The client (10.10.0.2) is the exception: its UDP to the allowed server goes through.
    sc.send("c", udp("c", 33600, 53, b"q"))
    sc.send("s", udp("s", 53, 33600, b"a"))
    # The server (10.10.0.3) is in the blocked /24 without an exception.
    Tcp(sc, cport=5000, sport=41300).seg("s", "S")
    # Other sources: one in the other blocked network, one listed nowhere.
    sc.send("c", s.IP(src="192.0.2.9", dst=S4) / s.UDP(sport=33601, dport=53) / s.Raw(b"x"))
    sc.send("c", s.IP(src="198.51.100.9", dst=S4) / s.UDP(sport=33602, dport=53) / s.Raw(b"x"))
    sc.send("c", s.IP(src="198.51.100.9", dst="198.51.100.10") / s.UDP(sport=33603, dport=53)
            / s.Raw(b"x"))
    Tcp(sc, cport=41301, sport=80).handshake()
    sc.send("c", echo("c", 130, 1, v6=True))
    sc.send("s", echo("s", 130, 1, reply=True, v6=True))
    sc.send("c", s.IPv6(src="fd00::1:2", dst=S6) / s.ICMPv6EchoRequest(id=131, seq=1, data=b"x"))


@scenario
def hashlimit(sc):
    """-m hashlimit: DNS per source at 2/sec, burst 3 (five at once from the client: three accepted; two at once from another source: its own bucket; two more from the client 1.2 s later, within the rate again), and --hashlimit-above on SYNs per source and port (burst 2: the third and fourth at once dropped)."""
    sc.filter4 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -p tcp -m tcp --dport 80 -m hashlimit --hashlimit-above 1/sec --hashlimit-burst 2 --hashlimit-mode srcip,dstport --hashlimit-name swsyn -j DROP",
        "-A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT",
        "-A FORWARD -p udp -m udp --dport 53 -m hashlimit --hashlimit-upto 2/sec --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name swdns --hashlimit-htable-expire 60000 -j ACCEPT",
    ]
    sc.filter6 = []
    s = scapy()
    for i in range(5):
        sc.send("c", udp("c", 34000 + i, 53, b"q"), gap=0.01)
    for i in range(2):
        sc.send("c", s.IP(src="10.10.0.5", dst=S4) / s.UDP(sport=34010 + i, dport=53) / s.Raw(b"q"),
                gap=0.01)
    sc.wait(1.2)
    for i in range(2):
        sc.send("c", udp("c", 34020 + i, 53, b"later"), gap=0.01)
    for i in range(4):
        Tcp(sc, cport=41700 + i, sport=80).seg("c", "S", gap=0.01)


@scenario
def tcpmss_match(sc):
    """-m tcpmss: SYNs whose MSS option is 1400-1500 accepted (1460 in, 536 out); `! --mss 0:1399` on port 81 (a SYN without options matches it, one with MSS 1000 does not)."""
    sc.filter4 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -p tcp -m tcpmss --mss 1400:1500 -j ACCEPT",
        "-A FORWARD -p tcp -m tcp --dport 81 -m tcpmss ! --mss 0:1399 -j ACCEPT",
    ]
    sc.filter6 = []
    t = Tcp(sc, cport=41800, sport=80)
    t.seg("c", "S", opts=[("MSS", 1460)])
    t.seg("s", "SA")
    Tcp(sc, cport=41801, sport=80).seg("c", "S", opts=[("MSS", 536)])
    Tcp(sc, cport=41802, sport=81).seg("c", "S", opts=[])
    Tcp(sc, cport=41803, sport=81).seg("c", "S", opts=[("MSS", 1000)])
    Tcp(sc, cport=41804, sport=80).seg("c", "S", opts=[("NOP", None), ("WScale", 7),
                                                       ("MSS", 1452)])
