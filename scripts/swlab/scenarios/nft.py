"""nftables rulesets (rules.nft; statewall imports rules.json, what `nft -j list ruleset`
makes of it): the forward hook, chains, the match forms nft writes."""

from __future__ import annotations

from ..dsl import C4, S4, Tcp, echo, scapy, scenario, udp
from .rules import packet_fields_traffic

NFT_GATEWAY = """\
table inet filter {
	chain forward {
		type filter hook forward priority filter + 10; policy drop;
		ct state established,related accept
		ct state invalid drop
		ct state untracked accept
		ip saddr 10.10.0.2 jump lan_in comment "the client"
		ip6 saddr fd00::2 jump lan_in
		goto logdrop
	}

	chain lan_in {
		tcp dport { 22, 80, 443 } accept
		meta l4proto udp th dport 53 accept
		icmp type echo-request accept
		tcp dport 8000-8999 return
		tcp dport 9000 reject with tcp reset
		tcp flags & (syn | ack) == syn tcp dport 7000-7999 accept
	}

	chain logdrop {
		udp dport 5000 accept
		drop
	}
}

table ip raw {
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		udp dport 5353 notrack
		udp sport 5353 notrack
	}
}
"""


@scenario
def nft_gateway(sc):
    """An nftables ruleset (rules.nft; statewall imports rules.json, what `nft -j list ruleset` makes of it): an inet forward chain jumping to a chain per client address of both families, th dport after l4proto, a return before a reject, tcp flags, a goto to a drop chain that accepts one port, notrack in an ip raw prerouting chain."""
    sc.nft = NFT_GATEWAY
    for i, port in enumerate((22, 443, 8080, 9000, 25, 7001)):
        t = Tcp(sc, cport=42200 + i, sport=port)
        t.seg("c", "S")
        t.seg("s", "SA")
    t = Tcp(sc, cport=42210, sport=22, v6=True)
    t.seg("c", "S")
    t.seg("s", "SA")
    sc.send("c", udp("c", 33500, 53, b"q"))
    sc.send("s", udp("s", 53, 33500, b"a"))
    sc.send("c", udp("c", 33501, 5000, b"logdrop-accepts"))
    sc.send("c", udp("c", 33502, 5001, b"dropped"))
    sc.send("s", udp("s", 5353, 5353, b"mdns"))
    sc.send("c", udp("c", 33503, 53, b"v6", v6=True))
    sc.send("c", echo("c", 98, 1))
    sc.send("s", echo("s", 99, 1))



NFT_MATCHES = """\
table inet filter {
	chain forward {
		type filter hook forward priority filter + 10; policy drop;
		tcp dport 1000 tcp flags syn accept
		tcp dport 1001 tcp flags == syn accept
		tcp dport 1002 tcp flags & (fin | syn | rst | ack) == syn accept
		tcp dport 1003 tcp flags & (fin | syn | rst | ack) != syn accept
		udp dport < 100 accept
		udp sport 4000 udp dport != { 53, 99 } accept
		icmp type echo-request icmp code 0 accept
		ip6 nexthdr udp udp dport 2000 accept
		meta nfproto ipv6 icmpv6 type echo-request accept
		ip daddr != 10.10.0.3 udp dport 5000 accept
		ct direction reply udp sport 6000 accept
		udp dport 6000 accept
	}
}
"""


@scenario
def nft_matches(sc):
    """The match forms nft writes: `tcp flags syn` (the bit set), `tcp flags == syn` (exactly), `tcp flags & MASK ==`/`!=`, a port comparison, `!=` with a set, `icmp code`, `ip6 nexthdr`, `meta nfproto`, `!=` on an address, `ct direction`."""
    s = scapy()
    sc.nft = NFT_MATCHES
    for i, (port, flags) in enumerate(((1000, "SEC"), (1000, "A"), (1001, "S"), (1001, "SE"),
                                       (1002, "SE"), (1002, "SA"), (1003, "A"), (1003, "S"))):
        Tcp(sc, cport=42300 + i, sport=port).seg("c", flags)
    sc.send("c", udp("c", 33600, 53, b"lt100"))
    sc.send("c", udp("c", 33601, 100, b"not-lt100"))
    sc.send("c", udp("c", 4000, 5, b"neq-set"))
    sc.send("c", udp("c", 4000, 53, b"in-set"))
    sc.send("c", echo("c", 100, 1))
    sc.send("c", s.IP(src=C4, dst=S4) / s.ICMP(type=8, code=1, id=101, seq=1) / s.Raw(b"code1"))
    sc.send("c", udp("c", 33602, 2000, b"v6", v6=True))
    sc.send("c", udp("c", 33603, 2000, b"v4"))
    sc.send("c", echo("c", 102, 1, v6=True))
    sc.send("c", udp("c", 33604, 5000, b"daddr"))
    sc.send("c", udp("c", 33605, 6000, b"original"))
    sc.send("s", udp("s", 6000, 33605, b"reply"))
    sc.send("s", udp("s", 6000, 33606, b"new-from-server"))


NFT_PACKET = """\
table inet filter {
	chain forward {
		type filter hook forward priority filter + 10; policy drop;
		ct state established,related meta length <= 100 accept
		ip ttl < 5 drop
		ether saddr 02:00:00:00:00:66 drop
		meta pkttype broadcast drop
		udp dport 53 meta length 29-40 log prefix "swnft small dns: " level info accept
		meta pkttype multicast meta l4proto udp accept
		tcp dport 80 ct state new accept
		ip6 hoplimit 255 accept
		ip6 hoplimit > 100 drop
		meta l4proto ipv6-icmp accept
	}
}
"""


@scenario
def nft_packet_matches(sc):
    """nftables' matches on each packet's own fields, as packet-matches tests iptables': `meta length` beside `ct state` (an established flow's 200-byte segment dropped, the next small one accepted), `ip ttl <`, `ether saddr`, `meta pkttype`, a UDP length range logged and accepted (`log ... accept` is two statewall rules), `ip6 hoplimit` equal and greater."""
    sc.nft = NFT_PACKET
    packet_fields_traffic(sc, udp_base=33410, echo_seq=2)
