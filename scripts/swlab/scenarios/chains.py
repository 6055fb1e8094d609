"""User-defined chains: -j CHAIN and back, -g CHAIN, -j RETURN (in a chain and in FORWARD),
nesting, one chain reached from several places, a chain name used by both families."""

from __future__ import annotations

from ..dsl import Tcp, echo, scenario, udp


@scenario
def chains_gateway(sc):
    """The shape tools write: ESTABLISHED first, INVALID dropped, the client's traffic through a chain (multiport with a comment, DNS, ping; RETURN for TCP 8000-8999 before a catch-all TCP accept), everything else to a drop chain."""
    sc.chains4 = ["lan-in", "logdrop"]
    sc.filter4 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
        "-A FORWARD -s 10.10.0.2/32 -j lan-in",
        "-A FORWARD -j logdrop",
        '-A lan-in -p tcp -m multiport --dports 22,80,443 -m comment --comment "web and ssh" -j ACCEPT',
        "-A lan-in -p udp -m udp --dport 53 -j ACCEPT",
        "-A lan-in -p icmp -m icmp --icmp-type 8 -j ACCEPT",
        "-A lan-in -p tcp -m tcp --dport 8000:8999 -j RETURN",
        "-A lan-in -p tcp -j ACCEPT",
        "-A lan-in -j RETURN",
        "-A logdrop -j DROP",
    ]
    sc.filter6 = []
    for i, port in enumerate((22, 443, 8080, 9000, 25)):
        t = Tcp(sc, cport=42000 + i, sport=port)
        t.seg("c", "S")
        t.seg("s", "SA")
    sc.send("c", udp("c", 33200, 53, b"q"))
    sc.send("s", udp("s", 53, 33200, b"a"))
    sc.send("c", udp("c", 33201, 123, b"ntp"))
    sc.send("c", echo("c", 95, 1))
    sc.send("s", echo("s", 95, 1, reply=True))
    sc.send("s", echo("s", 96, 1))
    sc.send("s", udp("s", 53, 33202, b"unasked"))


@scenario
def chains_goto_return(sc):
    """-g CHAIN returns to the caller's caller (in FORWARD: the policy), -j CHAIN comes back after the jump, RETURN in a nested chain and in FORWARD, a chain jumped to from two places; ip6tables has a chain of the same name with other rules."""
    sc.chains4 = ["a", "b", "c"]
    sc.filter4 = [
        "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -p udp -m udp --dport 9000 -g c",
        "-A FORWARD -p udp -m udp --dport 9999 -j RETURN",
        "-A FORWARD -p udp -j a",
        "-A FORWARD -p udp -m udp --dport 7000:9999 -j ACCEPT",
        "-A a -p udp -m udp --dport 5000 -j ACCEPT",
        "-A a -p udp -m udp --dport 7000:7099 -g b",
        "-A a -p udp -m udp --dport 7100:7199 -j b",
        "-A a -p udp -m udp --dport 7100:7149 -j DROP",
        "-A a -j c",
        "-A a -p udp -m udp --dport 7300 -j DROP",
        "-A b -p udp -m udp --sport 1111 -j ACCEPT",
        "-A b -p udp -m udp --dport 7050 -j DROP",
        "-A b -p udp -m udp --dport 7150 -j RETURN",
        "-A b -p udp -m udp --dport 7150:7160 -j DROP",
        "-A c -p udp -m udp --dport 7200 -j RETURN",
        "-A c -p udp -m udp --dport 7200:7299 -j DROP",
        "-A c -p udp -m udp --dport 7300 -j ACCEPT",
    ]
    sc.chains6 = ["a"]
    sc.filter6 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -p udp -j a",
        "-A FORWARD -p udp -j ACCEPT",
        "-A a -p udp -m udp --dport 5000 -j DROP",
        "-A a -p udp -m udp --dport 5001 -j RETURN",
        "-A a -p udp -m udp --dport 5001:5002 -j DROP",
    ]
    ports = (5000, 7000, 7050, 7099, 7100, 7120, 7150, 7155, 7160, 7170, 7200, 7250, 7300,
             7400, 9000, 9001, 9999, 6000)
    for i, port in enumerate(ports):
        sc.send("c", udp("c", 33300 + i, port, b"v4"))
    sc.send("c", udp("c", 1111, 7010, b"sport"))
    for i, port in enumerate((5000, 5001, 5002, 5003)):
        sc.send("c", udp("c", 33400 + i, port, b"v6", v6=True))


@scenario
def input_rules_are_the_hosts(sc):
    """A gateway dump with INPUT rules beside FORWARD's: INPUT accepts SSH and ping to the gateway itself, which the kernel never runs for forwarded (bridged) packets; FORWARD accepts only HTTP. Import leaves INPUT out, so SSH and ping through the gateway stay dropped."""
    sc.stateful("-A FORWARD -s 10.10.0.2/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT")
    sc.filter4 = ["-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
                  "-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT", *sc.filter4]
    for i, port in enumerate((22, 80)):
        t = Tcp(sc, cport=42100 + i, sport=port)
        t.seg("c", "S")
        t.seg("s", "SA")
    sc.send("c", echo("c", 97, 1))

