"""Every class of malformed or unusual packet, one frame each (issue 13, item 2), beside an
established connection that must keep flowing: the kernel's verdict and ctstate for each are
recorded, and statewall must give the same (docs/malformed-classes.md is the table, made by
`swlab classes-table`).

Not here: 802.1ad (QinQ) frames, which the kernel's br_netfilter bridges without filtering
(it looks past one 802.1Q tag only) and statewall filters by their inner IP header, a
deliberate deviation (docs/conntrack.md); IP fragments, which tests/scenarios-fragments/
covers class by class."""

from __future__ import annotations

from ..dsl import C4, C6, CMAC, S4, S6, SMAC, Tcp, csum16, scapy, scenario

# Every class comes from the client, a fresh tuple each (source ports from 42000), to the
# server; the ruleset accepts NEW from the client, so a class the kernel's conntrack takes is
# accepted and one it calls INVALID is dropped.
RULES = [
    "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
    "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A FORWARD -m physdev --physdev-in lan -m conntrack --ctstate NEW -j ACCEPT",
]


def fix4(d: bytes) -> bytes:
    """An IPv4 datagram with its header checksum made right again."""
    ihl = min((d[0] & 0x0F) * 4, len(d))
    b = bytearray(d)
    if ihl >= 12:
        b[10:12] = b"\0\0"
        b[10:12] = csum16(bytes(b[:ihl])).to_bytes(2, "big")
    return bytes(b)


def put(d: bytes, off: int, v: bytes) -> bytes:
    return d[:off] + v + d[off + len(v):]


def classes():
    """(name, kind, value): kind `ip` (an IP datagram, bytes or scapy) or `frame` (a whole
    Ethernet frame)."""
    s = scapy()
    ports = iter(range(42000, 43000))

    def syn(dport=80, **ip):
        return s.IP(src=ip.pop("src", C4), dst=ip.pop("dst", S4), **ip) / s.TCP(
            sport=next(ports), dport=dport, flags="S", seq=1000, options=[("MSS", 1460)])

    def tcp(flags, payload=b"", options=None, **kw):
        return s.IP(src=C4, dst=S4) / s.TCP(sport=kw.pop("sport", None) or next(ports),
                                            dport=kw.pop("dport", 80), flags=flags, seq=1000,
                                            ack=kw.pop("ack", 0), options=options or [],
                                            **kw) / s.Raw(payload)

    def dgram(payload=b"q", **kw):
        return s.IP(src=C4, dst=S4) / s.UDP(sport=kw.pop("sport", None) or next(ports),
                                            dport=kw.pop("dport", 53), **kw) / s.Raw(payload)

    def v6(**kw):
        return s.IPv6(src=kw.pop("src", C6), dst=S6, **kw)

    def v6syn():
        return s.TCP(sport=next(ports), dport=80, flags="S", seq=1000)

    nops = [s.IPOption_NOP()] * 4
    eth = bytes(s.Ether(src=CMAC, dst=SMAC, type=0x0800))
    syn_b = bytes(syn())
    out = [
        # Layer 2.
        ("runt: an Ethernet header alone", "frame", eth),
        ("runt: 10 bytes of an IPv4 header", "frame", eth + syn_b[:10]),
        ("ARP request (not IP)", "frame",
         bytes(s.Ether(src=CMAC, dst="ff:ff:ff:ff:ff:ff") / s.ARP(hwsrc=CMAC, psrc=C4, pdst=S4))),
        ("unknown ethertype 0x88b5", "frame",
         bytes(s.Ether(src=CMAC, dst=SMAC, type=0x88B5)) + b"\0" * 46),
        ("802.1Q VLAN tag around an IPv4 SYN", "frame",
         bytes(s.Ether(src=CMAC, dst=SMAC) / s.Dot1Q(vlan=10) / syn())),
        ("a 1514-byte frame (the largest)", "ip", syn() / s.Raw(b"x" * (1500 - 44))),
        # IPv4 header.
        ("IPv4 ethertype, version 5", "ip", fix4(put(syn_b, 0, bytes([0x55])))),
        ("IHL 4 (below 5)", "ip", fix4(put(bytes(syn()), 0, bytes([0x44])))),
        ("IHL 15, the options past the datagram", "ip", fix4(put(bytes(syn()), 0, bytes([0x4F])))),
        ("total length beyond the frame", "ip", fix4(put(bytes(syn()), 2, (200).to_bytes(2, "big")))),
        ("total length below the header", "ip", fix4(put(bytes(syn()), 2, (10).to_bytes(2, "big")))),
        ("bytes after the total length (trailer)", "ip", bytes(syn()) + b"trailer-bytes!"),
        ("bad IPv4 header checksum", "ip", put(bytes(syn()), 10, b"\x12\x34")),
        ("TTL 0", "ip", syn(ttl=0)),
        ("TTL 1", "ip", syn(ttl=1)),
        ("IPv4 option: router alert", "ip", syn(options=[s.IPOption_Router_Alert()])),
        ("IPv4 option: loose source route", "ip",
         syn(options=[s.IPOption_LSRR(routers=["10.10.0.9"])])),
        ("IPv4 option: timestamp", "ip", syn(options=[s.IPOption_Timestamp(flg=0)])),
        ("IPv4 option with length 0", "ip", fix4(put(bytes(syn(options=nops)), 20, b"\x44\x00\x00\x00"))),
        ("IPv4 option longer than the header", "ip", fix4(put(bytes(syn(options=nops)), 20, b"\x83\x20\x04\x00"))),
        ("reserved (evil) flag", "ip", syn(flags=4)),
        ("DF set", "ip", syn(flags="DF")),
        ("land: source equals destination", "ip", syn(src=S4)),
        ("broadcast source 255.255.255.255", "ip", syn(src="255.255.255.255")),
        ("multicast source 224.0.0.1", "ip", syn(src="224.0.0.1")),
        ("source 0.0.0.0", "ip", syn(src="0.0.0.0")),
        ("loopback source 127.0.0.1", "ip", syn(src="127.0.0.1")),
        ("UDP to multicast 224.0.0.251", "ip",
         s.IP(src=C4, dst="224.0.0.251") / s.UDP(sport=next(ports), dport=5353) / s.Raw(b"m")),
        ("UDP to broadcast 10.10.0.255", "ip",
         s.IP(src=C4, dst="10.10.0.255") / s.UDP(sport=next(ports), dport=9) / s.Raw(b"b")),
        ("protocol 253 (experimental)", "ip", s.IP(src=C4, dst=S4, proto=253) / s.Raw(b"x" * 20)),
        ("protocol 0 (hop-by-hop, in IPv4)", "ip", s.IP(src=C4, dst=S4, proto=0) / s.Raw(b"x" * 20)),
        # TCP.
        ("TCP header cut to 12 bytes", "ip", fix4(put(bytes(syn())[:32], 2, (32).to_bytes(2, "big")))),
        ("TCP data offset 3", "ip", put(bytes(syn()), 32, bytes([0x30]))),
        ("TCP data offset 15, past the segment", "ip", put(bytes(syn()), 32, bytes([0xF0]))),
        ("bad TCP checksum", "ip", put(bytes(syn()), 36, b"\xde\xad")),
        ("TCP without flags (NULL)", "ip", tcp("")),
        ("TCP SYN+FIN", "ip", tcp("SF")),
        ("TCP SYN+RST", "ip", tcp("SR")),
        ("TCP FIN+PSH+URG (Xmas)", "ip", tcp("FPU")),
        ("TCP every flag", "ip", tcp("FSRPAUEC")),
        ("TCP SYN with data", "ip", tcp("S", b"data on the SYN")),
        ("TCP source port 0", "ip", tcp("S", sport=0)),
        ("TCP destination port 0", "ip", tcp("S", dport=0)),
        ("TCP option of length 1", "ip", tcp("S", options=[(2, b"")])),
        ("TCP option longer than the header", "ip", put(bytes(tcp("S", options=[("NOP", None)] * 4)), 40, b"\x02\x20\x05\xb4")),
        ("TCP MSS option of length 3", "ip", put(bytes(tcp("S", options=[("NOP", None)] * 4)), 40, b"\x02\x03\x05\x01")),
        ("TCP window scale 15", "ip", tcp("S", options=[("WScale", 15)])),
        ("TCP urgent pointer with URG", "ip", tcp("SU", urgptr=5)),
        ("TCP reserved bits set", "ip", tcp("S", reserved=7)),
        ("TCP ECE and CWR on a SYN", "ip", tcp("SEC")),
        ("TCP ACK alone, no connection", "ip", tcp("A", ack=5000)),
        ("TCP RST alone, no connection", "ip", tcp("R")),
        # UDP.
        ("UDP header cut to 6 bytes", "ip", fix4(put(bytes(dgram())[:26], 2, (26).to_bytes(2, "big")))),
        ("UDP length beyond the datagram", "ip", dgram(len=60)),
        ("UDP length below 8", "ip", dgram(len=4)),
        ("bad UDP checksum", "ip", dgram(chksum=0x1234)),
        ("UDP checksum 0 (none)", "ip", dgram(chksum=0)),
        ("UDP source port 0", "ip", dgram(sport=0)),
        ("UDP destination port 0", "ip", dgram(dport=0)),
        # ICMP.
        ("ICMP cut to 2 bytes", "ip", fix4(put(bytes(s.IP(src=C4, dst=S4) / s.ICMP(id=1))[:22], 2, (22).to_bytes(2, "big")))),
        ("ICMP echo cut to 6 bytes", "ip", fix4(put(bytes(s.IP(src=C4, dst=S4) / s.ICMP(id=2))[:26], 2, (26).to_bytes(2, "big")))),
        ("bad ICMP checksum", "ip", s.IP(src=C4, dst=S4) / s.ICMP(id=3, chksum=0x1234) / s.Raw(b"p")),
        ("ICMP error quoting 10 bytes of IP header", "ip",
         s.IP(src=C4, dst=S4) / s.ICMP(type=3, code=3) / s.Raw(bytes(s.IP(src=S4, dst=C4) / s.UDP(sport=53, dport=42999))[:10])),
        ("ICMP error quoting an ICMP error", "ip",
         s.IP(src=C4, dst=S4) / s.ICMP(type=3, code=1) / s.Raw(bytes(
             s.IP(src=S4, dst=C4) / s.ICMP(type=3, code=3) / s.Raw(bytes(
                 s.IP(src=C4, dst=S4) / s.UDP(sport=42998, dport=53))[:28]))[:28])),
        ("ICMP error quoting a tuple nobody used", "ip",
         s.IP(src=C4, dst=S4) / s.ICMP(type=3, code=3) / s.Raw(bytes(
             s.IP(src=S4, dst=C4) / s.UDP(sport=53, dport=42997))[:28])),
        ("ICMP type 42 (unassigned)", "ip", s.IP(src=C4, dst=S4) / s.ICMP(type=42) / s.Raw(b"x")),
        ("ICMP redirect", "ip", s.IP(src=C4, dst=S4) / s.ICMP(type=5, code=1, gw="10.10.0.9") / s.Raw(bytes(
            s.IP(src=S4, dst=C4) / s.UDP(sport=53, dport=42996))[:28])),
        ("ICMP timestamp request", "ip",
         s.IP(src=C4, dst=S4) / s.ICMP(type=13, id=4, ts_ori=1, ts_rx=0, ts_tx=0)),
        # IPv6.
        ("IPv6 payload length beyond the frame", "ip", put(bytes(v6() / v6syn()), 4, (400).to_bytes(2, "big"))),
        ("IPv6 hop-by-hop options header", "ip",
         v6() / s.IPv6ExtHdrHopByHop(options=[s.PadN(optdata=b"\0" * 2)]) / v6syn()),
        ("IPv6 routing header type 0", "ip", v6() / s.IPv6ExtHdrRouting(type=0, addresses=["fd00::9"]) / v6syn()),
        ("IPv6 destination options header", "ip", v6() / s.IPv6ExtHdrDestOpt() / v6syn()),
        ("IPv6 unknown next header 253", "ip", v6(nh=253) / s.Raw(b"x" * 16)),
        ("IPv6 extension headers longer than the packet", "ip",
         bytes(v6() / s.IPv6ExtHdrDestOpt(len=20) / s.Raw(b"\0" * 8))),
        ("IPv6 hop limit 0", "ip", v6(hlim=0) / v6syn()),
        ("IPv6 multicast source", "ip", v6(src="ff02::1") / v6syn()),
        ("ICMPv6 echo with a bad checksum", "ip", v6() / s.ICMPv6EchoRequest(id=5, cksum=0x1234)),
        ("UDP over IPv6 with checksum 0", "ip", v6() / s.UDP(sport=next(ports), dport=53, chksum=0) / s.Raw(b"q")),
    ]
    return out


@scenario
def malformed_classes(sc):
    """Malformed and unusual packets, one per class (runts, non-IP and VLAN frames, every IPv4 header fault, options, odd addresses, TCP flags/offsets/options, UDP lengths and checksums, ICMP errors nested and truncated, IPv6 extension header faults), each a fresh tuple from the client, NEW accepted and INVALID dropped, beside an established connection that must keep flowing."""
    sc.filter4 = list(RULES)
    sc.filter6 = list(RULES)
    t = Tcp(sc, cport=41999, sport=80)
    t.handshake()
    names = []
    for i, (name, kind, value) in enumerate(classes()):
        if kind == "frame":
            sc.send_frame("c", value)
        else:
            sc.send("c", bytes(value))
        names.append(name)
        if i % 8 == 7:
            t.seg("c", "PA", f"between classes {i}".encode())
            t.seg("s", "A")
    t.seg("c", "FA")
    t.seg("s", "FA")
    t.seg("c", "A")
    sc.extra["classes.txt"] = "".join(f"{n}\n" for n in names)
