"""-j LOG: a non-terminating target (the walk goes on after it), with prefixes, levels,
the TCP/IP extras and a limit; the lines themselves compared with the kernel's."""

from __future__ import annotations

from ..dsl import Tcp, echo, scenario, udp


@scenario
def log_continues(sc):
    """The issue's gateway: ESTABLISHED first, INVALID dropped, the client's traffic through a chain that logs every TCP packet and goes on (multiport with a comment, DNS under a limit, an address range, ping; RETURN), everything else to a chain that logs at most 2 then 3/min and drops; IPv6 logged with its extras and accepted."""
    sc.chains4 = ["lan-in", "logdrop"]
    sc.filter4 = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
        "-A FORWARD -m physdev --physdev-in lan -j lan-in",
        "-A FORWARD -j logdrop",
        '-A lan-in -p tcp -j LOG --log-prefix "swlog-lan-tcp: " --log-tcp-sequence --log-tcp-options',
        '-A lan-in -p tcp -m multiport --dports 22,80,443 -m comment --comment "web and ssh" -j ACCEPT',
        "-A lan-in -p udp -m udp --dport 53 -m limit --limit 100/sec -j ACCEPT",
        "-A lan-in -m iprange --src-range 10.10.0.2-10.10.0.9 -p udp -m udp --dport 5000:5999 -j ACCEPT",
        "-A lan-in -p icmp -m icmp --icmp-type 8 -j ACCEPT",
        "-A lan-in -j RETURN",
        '-A logdrop -m limit --limit 3/min --limit-burst 2 -j LOG --log-prefix "swlog-drop: " --log-level 6',
        "-A logdrop -j DROP",
    ]
    sc.filter6 = [
        '-A FORWARD -j LOG --log-prefix "swlog6: " --log-ip-options --log-level 7',
        "-A FORWARD -p ipv6-icmp -j ACCEPT",
    ]
    for i, port in enumerate((22, 443, 25)):
        t = Tcp(sc, cport=42100 + i, sport=port)
        t.seg("c", "S")
        t.seg("s", "SA")
        t.seg("c", "A")
    sc.send("c", udp("c", 33300, 53, b"q"))
    sc.send("s", udp("s", 53, 33300, b"a"))
    sc.send("c", udp("c", 33301, 5353, b"range"))
    sc.send("c", udp("c", 33302, 123, b"ntp"))
    sc.send("c", echo("c", 97, 1))
    sc.send("s", echo("s", 97, 1, reply=True))
    for i in range(3):
        sc.send("s", udp("s", 53, 33310 + i, b"unasked"))
    sc.send("c", echo("c", 98, 1, v6=True))
    sc.send("s", echo("s", 98, 1, reply=True, v6=True))
