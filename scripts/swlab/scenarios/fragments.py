"""IP fragments (IPv4 and IPv6): the kernel reassembles before conntrack (nf_defrag_ipv4,
nf_defrag_ipv6), logs and judges the whole datagram once, and the bridge re-fragments what it
forwards. These scenarios are written to tests/scenarios-fragments/ (FRAG_DIR), not
tests/scenarios/, until the engine reassembles: see tests/scenarios-fragments/README.md.

All run under one seed-style ruleset (frag_rules): INVALID dropped, ESTABLISHED/RELATED
accepted, NEW from the client accepted for UDP to port 53, ICMP(v6) echo requests and TCP to
port 80; IPv6 likewise."""

from __future__ import annotations

from .. import FRAG_DIR
from ..dsl import (
    ALLOW_HTTP,
    ALLOW_HTTP6,
    ALLOW_PING,
    ALLOW_UDP,
    C4,
    C6,
    R4,
    S4,
    S6,
    Tcp,
    icmp_error,
    scapy,
    scenario,
    u32,
    udp,
)
from .ftp import data_conn, ftp_login

DEST = FRAG_DIR  # scenarios/__init__.py's dest_of: where `swlab generate` writes these

ALLOW_UDP6 = "-A FORWARD -s fd00::2/128 -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT"
ALLOW_PING6 = "-A FORWARD -s fd00::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT"


def frag_rules(sc):
    sc.stateful(ALLOW_UDP, ALLOW_PING, ALLOW_HTTP, allow6=(ALLOW_UDP6, ALLOW_PING6, ALLOW_HTTP6))


def blob(n: int, seed: int) -> bytes:
    """n bytes of payload that differ from datagram to datagram."""
    return bytes((i * 7 + seed * 31 + (i >> 8)) & 0xFF for i in range(n))


def big_udp(side, sport, dport, n, seed, v6=False, **kw):
    return udp(side, sport, dport, blob(n, seed), v6=v6, **kw)


# Three fragments of a UDP datagram with 3000 bytes of data (3008 bytes of body): 1480, 1480
# and 48 bytes, what a 1500-byte MTU sender makes.
CUT3 = (1480, 2960)
CUT3_6 = (1232, 2464)  # IPv6: 1232 + 8 (fragment header) + 40 = 1280


# ---------------------------------------------------------------------------------------
# IPv4: order, duplicates, overlaps


@scenario
def frag_udp_in_order(sc):
    """IPv4 UDP of 3000 bytes in three fragments, in order: held until the last, the whole datagram NEW (logged once); then a reply ESTABLISHED."""
    frag_rules(sc)
    sc.send_frags("c", sc.datagram(big_udp("c", 33100, 53, 3000, 1)).split(*CUT3))
    sc.send("s", udp("s", 53, 33100, b"answer"))
    sc.send("c", udp("c", 33100, 53, b"again"))


@scenario
def frag_udp_reversed(sc):
    """IPv4 UDP in three fragments sent last first: completed by the first fragment; the fragments leave in offset order."""
    frag_rules(sc)
    sc.send_frags("c", sc.datagram(big_udp("c", 33110, 53, 3000, 2)).split(*CUT3),
                  order=(2, 1, 0))
    sc.send_frags("c", sc.datagram(big_udp("c", 33111, 53, 3000, 3)).split(*CUT3),
                  order=(1, 2, 0))
    sc.send("s", udp("s", 53, 33110, b"answer"))


@scenario
def frag_udp_interleaved(sc):
    """Fragments of two IPv4 datagrams interleaved: one to port 53 (NEW, accepted), one to port 54 (NEW, dropped); each judged when it completes."""
    frag_rules(sc)
    a = sc.datagram(big_udp("c", 33120, 53, 3000, 4)).split(*CUT3)
    b = sc.datagram(big_udp("c", 33121, 54, 3000, 5)).split(*CUT3)
    for x, y in zip(a, b, strict=True):
        sc.send("c", x)
        sc.send("c", y)


@scenario
def frag_udp_duplicate(sc):
    """An IPv4 fragment sent twice (byte for byte) before the datagram completes, and the last fragment again after it completed."""
    frag_rules(sc)
    f = sc.datagram(big_udp("c", 33130, 53, 3000, 6)).split(*CUT3)
    sc.send_frags("c", f, order=(0, 1, 1, 2))
    sc.send("c", f[2])
    sc.send("s", udp("s", 53, 33130, b"answer"))


@scenario
def frag_udp_overlap(sc):
    """IPv4: a fragment overlapping the one before it by 8 bytes (other bytes there) discards the whole queue; the rest of the datagram never completes; a new datagram does."""
    frag_rules(sc)
    d = sc.datagram(big_udp("c", 33140, 53, 3000, 7))
    f = d.split(*CUT3)
    sc.send("c", f[0])
    sc.send("c", d.piece(1472, 2952, data=b"\xee" * 8 + d.body[1480:2952]))
    sc.send("c", f[1])
    sc.send("c", f[2])
    sc.send_frags("c", sc.datagram(big_udp("c", 33141, 53, 3000, 8)).split(*CUT3))


@scenario
def frag_udp_contained_duplicate(sc):
    """IPv4: fragments lying inside what is already queued (the same bytes, and other bytes at the same place) are dropped as duplicates; the datagram completes with the first bytes."""
    frag_rules(sc)
    d = sc.datagram(big_udp("c", 33150, 53, 3000, 9))
    f = d.split(*CUT3)
    sc.send("c", f[0])
    sc.send("c", f[1])
    sc.send("c", d.piece(1480, 1488))  # inside fragment 1, the same bytes
    sc.send("c", d.piece(8, 24, data=b"\xee" * 16))  # inside fragment 0, other bytes
    sc.send("c", d.piece(1472, 1496))  # across the boundary of fragments 0 and 1, same bytes
    sc.send("c", f[2])


@scenario
def frag_udp_not_multiple_of_8(sc):
    """IPv4: a non-final fragment of 1001 bytes (not a multiple of 8) then the rest from offset 1000, and another datagram whose second fragment starts at 1008."""
    frag_rules(sc)
    d = sc.datagram(big_udp("c", 33160, 53, 2000, 10))
    sc.send("c", d.piece(0, 1001))
    sc.send("c", d.piece(1000, len(d.body)))
    e = sc.datagram(big_udp("c", 33161, 53, 2000, 11))
    sc.send("c", e.piece(0, 1001))
    sc.send("c", e.piece(1008, len(e.body)))


@scenario
def frag_header_fields(sc):
    """IPv4: fragments of one datagram with different TTLs, the last sent first: which header the forwarded fragments carry."""
    frag_rules(sc)
    d = sc.datagram(big_udp("c", 33170, 53, 3000, 12))
    sc.send("c", d.piece(2960, len(d.body), ttl=10))
    sc.send("c", d.piece(1480, 2960, ttl=20))
    sc.send("c", d.piece(0, 1480, ttl=30))


@scenario
def frag_tcp_tiny_first(sc):
    """IPv4: a SYN whose first fragment holds 8 bytes of the TCP header (ports, sequence number), the rest in a second; then SYN-ACK and ACK."""
    frag_rules(sc)
    t = Tcp(sc, cport=40100, sport=80)
    syn = t.seg("c", "S", build_only=True)
    t.nxt["c"] = u32(t.nxt["c"] + 1)
    sc.send_frags("c", sc.datagram(syn).split(8))
    t.seg("s", "SA")
    t.seg("c", "A")
    data = sc.datagram(t.seg("c", "PA", b"GET / HTTP/1.1\r\n\r\n", build_only=True))
    sc.send_frags("c", data.split(8, 16), order=(1, 2, 0))


@scenario
def frag_udp_missing_expired(sc):
    """ipfrag_time = 2: a datagram whose middle fragment is missing is held; 3.5 s later its middle fragment arrives alone, finds no queue (expired) and is held too."""
    frag_rules(sc)
    sc.sysctl["net.ipv4.ipfrag_time"] = 2
    f = sc.datagram(big_udp("c", 33180, 53, 3000, 13)).split(*CUT3)
    sc.send("c", f[0])
    sc.send("c", f[2])
    sc.send("c", f[1], gap=3.5)
    sc.send_frags("c", sc.datagram(big_udp("c", 33181, 53, 3000, 14)).split(*CUT3))


@scenario
def frag_udp_lone(sc):
    """IPv4: a lone first, a lone middle and a lone last fragment (three datagrams that never complete), then a whole datagram."""
    frag_rules(sc)
    sc.send("c", sc.datagram(big_udp("c", 33190, 53, 3000, 15)).split(*CUT3)[0])
    sc.send("c", sc.datagram(big_udp("c", 33191, 53, 3000, 16)).split(*CUT3)[1])
    sc.send("c", sc.datagram(big_udp("c", 33192, 53, 3000, 17)).split(*CUT3)[2])
    sc.send_frags("c", sc.datagram(big_udp("c", 33193, 53, 3000, 18)).split(*CUT3))


@scenario
def frag_udp_oversize(sc):
    """IPv4: 45 fragments of 1480 bytes, a datagram of 66,620 bytes (over 65,535): never forwarded; then a datagram of 65,535 bytes exactly in 45 fragments."""
    s = scapy()
    frag_rules(sc)
    big = sc.datagram(s.IP(src=C4, dst=S4) / s.UDP(sport=33200, dport=53, len=8, chksum=0),
                      payload=blob(66592, 19))
    sc.send_frags("c", big.split(*range(1480, len(big.body), 1480)), gap=0.005)
    n = 65535 - 20 - 8
    ok = sc.datagram(big_udp("c", 33201, 53, n, 20))
    sc.send_frags("c", ok.split(*range(1480, len(ok.body), 1480)), gap=0.005)


@scenario
def frag_udp_reply_established(sc):
    """IPv4: the client's small request (NEW), the server's reply in three fragments (ESTABLISHED, forwarded); an unasked fragmented datagram from the server (NEW, dropped)."""
    frag_rules(sc)
    sc.send("c", udp("c", 33210, 53, b"query"))
    sc.send_frags("s", sc.datagram(big_udp("s", 53, 33210, 3000, 21)).split(*CUT3))
    sc.send_frags("s", sc.datagram(big_udp("s", 53, 33211, 3000, 22)).split(*CUT3))


@scenario
def frag_icmp_echo_8000(sc):
    """ICMP echo request with 8000 bytes of data in six fragments (NEW), the reply in six fragments (ESTABLISHED)."""
    s = scapy()
    frag_rules(sc)
    cut = tuple(range(1480, 8008, 1480))
    req = s.IP(src=C4, dst=S4) / s.ICMP(type=8, id=300, seq=1) / s.Raw(blob(8000, 23))
    sc.send_frags("c", sc.datagram(req).split(*cut))
    rep = s.IP(src=S4, dst=C4) / s.ICMP(type=0, id=300, seq=1) / s.Raw(blob(8000, 23))
    sc.send_frags("s", sc.datagram(rep).split(*cut))


@scenario
def frag_icmp_error_quotes_fragment(sc):
    """A fragmented UDP datagram (NEW, forwarded), then ICMP port unreachable quoting its first fragment (MF set) and one quoting its second fragment (offset 1480)."""
    frag_rules(sc)
    d = sc.datagram(big_udp("c", 33220, 53, 3000, 24))
    f = d.split(*CUT3)
    sc.send_frags("c", f)
    sc.send("s", icmp_error(S4, C4, f[0]))
    sc.send("s", icmp_error(R4, C4, f[1], typ=11, code=0))


@scenario
def frag_ftp_227_in_fragments(sc):
    """FTP helper: the server's 227 reply in three IPv4 fragments (the TCP header and the text split); the helper reads the reassembled segment: the data connection is RELATED."""
    sc.stateful("-A FORWARD -s 10.10.0.2/32 -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT")
    sc.ftp_helper(21)
    t = ftp_login(sc)
    t.seg("c", "PA", b"PASV\r\n")
    reply = b"227 Entering Passive Mode (10,10,0,3,195,80).\r\n"
    seg = t.seg("s", "PA", reply, build_only=True)
    t.nxt["s"] = u32(t.nxt["s"] + len(reply))
    sc.send_frags("s", sc.datagram(seg).split(16, 40))
    t.seg("c", "A")
    data_conn(sc, "c", 41001, 50000)


# ---------------------------------------------------------------------------------------
# IPv6


def ext(*hdrs):
    """Extension headers for an IPv6 packet: 'hbh', 'dst'."""
    s = scapy()
    out = None
    for h in hdrs:
        x = s.IPv6ExtHdrHopByHop() if h == "hbh" else s.IPv6ExtHdrDestOpt()
        out = x if out is None else out / x
    return out


def udp6(side, sport, dport, n, seed, hdrs=()):
    s = scapy()
    a = {"c": C6, "s": S6}
    o = "s" if side == "c" else "c"
    l3 = s.IPv6(src=a[side], dst=a[o])
    if hdrs:
        l3 = l3 / ext(*hdrs)
    return l3 / s.UDP(sport=sport, dport=dport) / s.Raw(blob(n, seed))


@scenario
def frag6_udp(sc):
    """IPv6 UDP of 3000 bytes in three fragments in order (NEW, logged once), another sent last first, then a reply (ESTABLISHED); an ICMPv6 echo of 3000 bytes in fragments."""
    s = scapy()
    frag_rules(sc)
    sc.send_frags("c", sc.datagram(udp6("c", 33300, 53, 3000, 30)).split(*CUT3_6))
    sc.send_frags("c", sc.datagram(udp6("c", 33301, 53, 3000, 31)).split(*CUT3_6),
                  order=(2, 1, 0))
    sc.send("s", udp("s", 53, 33300, b"answer", v6=True))
    req = s.IPv6(src=C6, dst=S6) / s.ICMPv6EchoRequest(id=310, seq=1, data=blob(3000, 32))
    sc.send_frags("c", sc.datagram(req).split(*CUT3_6))


@scenario
def frag6_ext_headers(sc):
    """IPv6 UDP with hop-by-hop and destination options headers before the fragment header, in three fragments; a reply in fragments after a destination options header."""
    frag_rules(sc)
    sc.send_frags("c", sc.datagram(udp6("c", 33310, 53, 3000, 33, ("hbh", "dst"))).split(*CUT3_6))
    sc.send_frags("s", sc.datagram(udp6("s", 53, 33310, 3000, 34, ("dst",))).split(*CUT3_6))


@scenario
def frag6_atomic(sc):
    """IPv6 atomic fragments (offset 0, M clear): a UDP datagram to port 53, then the server's reply as an atomic fragment."""
    frag_rules(sc)
    d = sc.datagram(udp6("c", 33320, 53, 100, 35))
    sc.send("c", d.piece(0, len(d.body)))
    r = sc.datagram(udp6("s", 53, 33320, 100, 36))
    sc.send("s", r.piece(0, len(r.body)))


@scenario
def frag6_not_multiple_of_8(sc):
    """IPv6: a non-final fragment of 1001 bytes (not a multiple of 8) after a good first fragment, then the rest; then a whole fragmented datagram."""
    frag_rules(sc)
    d = sc.datagram(udp6("c", 33330, 53, 3000, 37))
    sc.send("c", d.piece(0, 1232))
    sc.send("c", d.piece(1232, 2233))
    sc.send("c", d.piece(2232, len(d.body)))
    e = sc.datagram(udp6("c", 33331, 53, 3000, 38))
    sc.send("c", e.piece(0, 1001))
    sc.send("c", e.piece(1000, 2232))
    sc.send("c", e.piece(2232, len(e.body)))
    sc.send_frags("c", sc.datagram(udp6("c", 33332, 53, 3000, 39)).split(*CUT3_6))


@scenario
def frag6_truncated_first(sc):
    """IPv6 (RFC 8200 4.5): a SYN whose first fragment holds 16 of the 24 bytes of TCP header, a UDP datagram whose first fragment holds only a destination options header, one whose first fragment ends inside the UDP header; then a good SYN."""
    frag_rules(sc)
    t = Tcp(sc, cport=40200, sport=80, v6=True)
    syn = t.seg("c", "S", build_only=True)
    sc.send_frags("c", sc.datagram(syn).split(16))
    d = sc.datagram(udp6("c", 33340, 53, 200, 40, ("dst",)), unfrag=0)
    sc.send_frags("c", d.split(8))
    d = sc.datagram(udp6("c", 33341, 53, 200, 43, ("dst",)), unfrag=0)
    sc.send("c", d.piece(0, 12))  # the options header and half the UDP header (12 bytes, MF)
    sc.send("c", d.piece(8, len(d.body)))
    t2 = Tcp(sc, cport=40201, sport=80, v6=True)
    t2.seg("c", "S")
    t2.seg("s", "SA")


@scenario
def frag6_overlap(sc):
    """IPv6: a fragment overlapping the one before it by 8 bytes discards the whole queue (RFC 5722); the rest never completes; an exact duplicate is dropped and the datagram completes."""
    frag_rules(sc)
    d = sc.datagram(udp6("c", 33350, 53, 3000, 41))
    f = d.split(*CUT3_6)
    sc.send("c", f[0])
    sc.send("c", d.piece(1224, 2464, data=b"\xee" * 8 + d.body[1232:2464]))
    sc.send("c", f[1])
    sc.send("c", f[2])
    e = sc.datagram(udp6("c", 33351, 53, 3000, 42))
    g = e.split(*CUT3_6)
    sc.send_frags("c", g, order=(0, 1, 1, 2))
