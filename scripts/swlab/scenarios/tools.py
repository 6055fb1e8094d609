"""Rulesets shaped like what firewall tools write: ufw's routed rules (its chains, LOG under a
limit, `limit` through -m recent, the IPv6 routing-header drop)."""

from __future__ import annotations

from ..dsl import C6, S6, Tcp, echo, scapy, scenario, udp

# `ufw default deny routed; ufw logging low; ufw route allow in on lan out on wan to any
# port 80 proto tcp` (and 53/udp), `ufw route limit ... port 22 proto tcp`, `ufw route deny
# in on wan out on lan`: the chains FORWARD reaches in ufw 0.36's iptables-save, `-i lan -o
# wan` written as physdev (the lab is a bridge). {v} is "" or "6", {mask} the family's.
UFW = """
-A FORWARD -j ufw{v}-before-logging-forward
-A FORWARD -j ufw{v}-before-forward
-A FORWARD -j ufw{v}-after-forward
-A FORWARD -j ufw{v}-after-logging-forward
-A FORWARD -j ufw{v}-reject-forward
-A FORWARD -j ufw{v}-track-forward
-A ufw{v}-after-logging-forward -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "
{before}
-A ufw{v}-before-forward -j ufw{v}-user-forward
-A ufw{v}-skip-to-policy-forward -j DROP
-A ufw{v}-user-forward -m physdev --physdev-in lan --physdev-out wan -p tcp -m tcp --dport 80 -j ACCEPT
-A ufw{v}-user-forward -m physdev --physdev-in lan --physdev-out wan -p udp -m udp --dport 53 -j ACCEPT
-A ufw{v}-user-forward -m physdev --physdev-in lan --physdev-out wan -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --set --name DEFAULT --mask {mask} --rsource
-A ufw{v}-user-forward -m physdev --physdev-in lan --physdev-out wan -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6 --name DEFAULT --mask {mask} --rsource -j ufw{v}-user-limit
-A ufw{v}-user-forward -m physdev --physdev-in lan --physdev-out wan -p tcp -m tcp --dport 22 -j ufw{v}-user-limit-accept
-A ufw{v}-user-forward -m physdev --physdev-in wan --physdev-out lan -j DROP
-A ufw{v}-user-limit -m limit --limit 3/min -j LOG --log-prefix "[UFW LIMIT BLOCK] "
-A ufw{v}-user-limit -j REJECT --reject-with {reject}
-A ufw{v}-user-limit-accept -j ACCEPT
"""
BEFORE4 = """-A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-forward -p icmp -m icmp --icmp-type 3 -j ACCEPT
-A ufw-before-forward -p icmp -m icmp --icmp-type 11 -j ACCEPT
-A ufw-before-forward -p icmp -m icmp --icmp-type 12 -j ACCEPT
-A ufw-before-forward -p icmp -m icmp --icmp-type 8 -j ACCEPT"""
BEFORE6 = """-A ufw6-before-forward -m rt --rt-type 0 -j DROP
-A ufw6-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j ACCEPT
-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 129 -j ACCEPT"""
CHAINS = ["after-forward", "after-logging-forward", "before-forward", "before-logging-forward",
          "reject-forward", "skip-to-policy-forward", "track-forward", "user-forward",
          "user-limit", "user-limit-accept"]


def ufw_rules(v: str) -> tuple[list[str], list[str]]:
    text = UFW.format(v=v, before=BEFORE6 if v else BEFORE4,
                      mask="ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" if v else "255.255.255.255",
                      reject="icmp6-port-unreachable" if v else "icmp-port-unreachable")
    return [f"ufw{v}-{c}" for c in CHAINS], [ln for ln in text.splitlines() if ln]


@scenario
def ufw_routed(sc):
    """ufw's routed rules (its chains as ufw 0.36 writes them, -i/-o as physdev): HTTP and DNS allowed lan to wan, SSH under `ufw route limit` (-m recent --set, then --update --seconds 30 --hitcount 6: the sixth and seventh new connections in 30 s rejected and logged under a limit), wan to lan denied, what falls through logged by "[UFW BLOCK]" (limit 3/min burst 10) and dropped by policy; ip6tables drops a type 0 routing header first."""
    s = scapy()
    sc.chains4, sc.filter4 = ufw_rules("")
    sc.chains6, sc.filter6 = ufw_rules("6")
    for i in range(7):
        t = Tcp(sc, cport=41000 + i, sport=22)
        t.seg("c", "S")
        if i < 5:
            t.seg("s", "SA")
    Tcp(sc, cport=41100, sport=80).handshake()
    sc.send("c", udp("c", 33500, 53, b"q"))
    sc.send("s", udp("s", 53, 33500, b"a"))
    Tcp(sc, cport=41101, sport=25).seg("c", "S")
    Tcp(sc, cport=5000, sport=41102).seg("s", "S")
    sc.send("c", echo("c", 120, 1))
    sc.send("s", echo("s", 120, 1, reply=True))
    sc.send("c", s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrRouting(type=0, segleft=0, addresses=[])
            / s.ICMPv6EchoRequest(id=121, seq=1, data=b"rh0"))
    sc.send("c", echo("c", 122, 1, v6=True))
    sc.send("s", echo("s", 122, 1, reply=True, v6=True))
    Tcp(sc, v6=True, cport=41103, sport=80).handshake()
    for i in range(7):
        Tcp(sc, v6=True, cport=41200 + i, sport=22).seg("c", "S")
