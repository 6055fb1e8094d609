"""Rulesets shaped like what firewall tools write: ufw's routed rules (its chains, LOG under a
limit, `limit` through -m recent, the IPv6 routing-header drop), firewalld's zones, Docker's
bridge chains, a Shorewall-style script."""

from __future__ import annotations

from ..dsl import C6, S4, S6, Tcp, echo, scapy, scenario, udp

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


def fwzone(d: str, zone: str, extra: list[str]) -> list[str]:
    """A firewalld zone's chain for direction d (I or O): pre, log, deny, allow, post, then
    the zone's ICMP accept for the ingress side."""
    c = f"FWD{d}_{zone}"
    rules = [f"-A {c} -j {c}_{s}" for s in ("pre", "log", "deny", "allow", "post")]
    if d == "I":
        rules.append(f"-A {c} -p icmp -j ACCEPT")
    return rules + extra


@scenario
def firewalld_zones(sc):
    """firewalld's iptables backend, two zones (internal on lan, public on wan): ESTABLISHED and the never-true DNAT state first, `-i lo` (never forwarded), FORWARD_IN_ZONES/FORWARD_OUT_ZONES going (-g) to each zone's chain and its pre/log/deny/allow/post chains, a rich rule logging and dropping a network, INVALID dropped, the rest rejected icmp-host-prohibited."""
    zones = [f"FWD{d}_{z}{s}" for d in "IO" for z in ("internal", "public")
             for s in ("", "_pre", "_log", "_deny", "_allow", "_post")]
    sc.chains4 = ["FORWARD_IN_ZONES", "FORWARD_OUT_ZONES", "FORWARD_direct", *zones]
    sc.filter4 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
        "-A FORWARD -i lo -j ACCEPT",
        "-A FORWARD -j FORWARD_direct",
        "-A FORWARD -j FORWARD_IN_ZONES",
        "-A FORWARD -j FORWARD_OUT_ZONES",
        "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
        "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
        "-A FORWARD_IN_ZONES -m physdev --physdev-in lan -g FWDI_internal",
        "-A FORWARD_IN_ZONES -g FWDI_public",
        "-A FORWARD_OUT_ZONES -m physdev --physdev-out lan -g FWDO_internal",
        "-A FORWARD_OUT_ZONES -g FWDO_public",
        *fwzone("I", "internal", [
            "-A FWDI_internal_allow -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT"]),
        *fwzone("I", "public", [
            '-A FWDI_public_deny -s 198.51.100.0/24 -j LOG --log-prefix "swfw public_DROP: "',
            "-A FWDI_public_deny -s 198.51.100.0/24 -j DROP"]),
        *fwzone("O", "internal", [
            "-A FWDO_internal_allow -p udp -m udp --dport 53 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT"]),
        *fwzone("O", "public", []),
    ]
    sc.filter6 = []
    s = scapy()
    Tcp(sc, cport=41400, sport=80).handshake()
    Tcp(sc, cport=41401, sport=22).seg("c", "S")
    Tcp(sc, cport=5000, sport=41402).seg("s", "S")
    sc.send("s", udp("s", 33700, 53, b"q"))
    sc.send("c", udp("c", 53, 33700, b"a"))
    sc.send("s", echo("s", 140, 1))
    sc.send("c", echo("c", 140, 1, reply=True))
    sc.send("s", s.IP(src="198.51.100.7", dst="10.10.0.2") / s.ICMP(type=8, id=141, seq=1)
            / s.Raw(b"ping"))


@scenario
def docker_bridge(sc):
    """Docker's filter rules for its bridge (the lan side as docker0, physdev): DOCKER-USER first (with the operator's drop of a network), the isolation stages (-j RETURN), ESTABLISHED to containers, a published port in DOCKER (! from the bridge, to a container's address), containers out to anywhere (`! -o docker0`), policy DROP."""
    sc.chains4 = ["DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"]
    sc.filter4 = [
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
        "-A FORWARD -m physdev --physdev-out lan -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -m physdev --physdev-out lan -j DOCKER",
        "-A FORWARD -m physdev --physdev-in lan ! --physdev-out lan -j ACCEPT",
        "-A FORWARD -m physdev --physdev-in lan --physdev-out lan -j ACCEPT",
        "-A DOCKER -d 10.10.0.2/32 -m physdev ! --physdev-in lan --physdev-out lan -p tcp -m tcp --dport 80 -j ACCEPT",
        "-A DOCKER-ISOLATION-STAGE-1 -m physdev --physdev-in lan ! --physdev-out lan -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
        "-A DOCKER-ISOLATION-STAGE-2 -m physdev --physdev-out lan -j DROP",
        "-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
        "-A DOCKER-USER -s 198.51.100.0/24 -j DROP",
        "-A DOCKER-USER -j RETURN",
    ]
    sc.filter6 = []
    s = scapy()
    Tcp(sc, cport=41500, sport=443).handshake()
    sc.send("c", udp("c", 33800, 53, b"q"))
    sc.send("s", udp("s", 53, 33800, b"a"))
    t = Tcp(sc, cport=80, sport=41501)
    t.seg("s", "S")
    t.seg("c", "SA")
    t.seg("s", "A")
    Tcp(sc, cport=22, sport=41502).seg("s", "S")
    sc.send("s", s.IP(src="198.51.100.9", dst="10.10.0.2") / s.TCP(sport=41503, dport=80, flags="S",
                                                               seq=7, window=64240))


@scenario
def shorewall_zones(sc):
    """A Shorewall-style script: FORWARD dispatching by interface to net_frwd/loc_frwd and the zone-pair chains (net2loc, loc2net), ESTABLISHED per pair, SSH in, broadcasts and multicasts dropped silently (-m addrtype), the rest logged under a limit (LOG --log-level 6) and dropped."""
    sc.chains4 = ["net_frwd", "loc_frwd", "net2loc", "loc2net"]
    sc.filter4 = [
        "-A FORWARD -m physdev --physdev-in wan -j net_frwd",
        "-A FORWARD -m physdev --physdev-in lan -j loc_frwd",
        '-A FORWARD -m limit --limit 2/sec --limit-burst 4 -j LOG --log-level 6 --log-prefix "swsw FORWARD:DROP:"',
        "-A FORWARD -j DROP",
        "-A net_frwd -m physdev --physdev-out lan -j net2loc",
        "-A loc_frwd -m physdev --physdev-out wan -j loc2net",
        "-A net2loc -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A net2loc -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT",
        "-A net2loc -m addrtype --dst-type BROADCAST -j DROP",
        "-A net2loc -m addrtype --dst-type MULTICAST -j DROP",
        '-A net2loc -m limit --limit 2/sec --limit-burst 4 -j LOG --log-level 6 --log-prefix "swsw net2loc:DROP:"',
        "-A net2loc -j DROP",
        "-A loc2net -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A loc2net -j ACCEPT",
    ]
    sc.filter6 = []
    s = scapy()
    Tcp(sc, cport=41600, sport=80).handshake()
    t = Tcp(sc, cport=22, sport=41601)
    t.seg("s", "S")
    t.seg("c", "SA")
    Tcp(sc, cport=25, sport=41602).seg("s", "S")

    def dst_mac(mac: str):
        return lambda f: bytes.fromhex(mac.replace(":", "")) + f[6:]
    sc.send("s", s.IP(src=S4, dst="255.255.255.255") / s.UDP(sport=68, dport=67) / s.Raw(b"b"),
            mangle=dst_mac("ff:ff:ff:ff:ff:ff"))
    sc.send("s", s.IP(src=S4, dst="224.0.0.251") / s.UDP(sport=5353, dport=5353) / s.Raw(b"m"),
            mangle=dst_mac("01:00:5e:00:00:fb"))
    sc.send("s", udp("s", 33900, 123, b"ntp"))
