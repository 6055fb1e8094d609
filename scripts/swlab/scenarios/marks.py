"""Packet and connection marks: mangle PREROUTING restores and saves them (a chain marks new
connections by port and protocol), mangle FORWARD adds a bit, filter FORWARD decides on both
and sets a connection mark, raw marks before conntrack, LOG prints MARK=, and an FTP data
connection starts with its control connection's mark."""

from __future__ import annotations

from ..dsl import Tcp, scenario, udp
from .ftp import data_conn, ftp_login


@scenario
def marks(sc):
    """Marks: CONNMARK restore/save around a marking chain, MARK --set-mark/--or-mark, -m mark and -m connmark (masked, negated), CONNMARK --set-mark in filter, LOG with MARK= in raw, mangle and filter; an active FTP data connection from the server is accepted only because it inherits the control connection's mark."""
    sc.raw4 = [
        "-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp",
        "-A PREROUTING -p udp -m udp --dport 5002 -j MARK --set-xmark 0x30/0xffffffff",
        '-A PREROUTING -p udp -m udp --dport 5002 -j LOG --log-prefix "swlogmark-raw: "',
    ]
    sc.helpers = ["ftp tcp 21"]
    sc.mangle_chains4 = ["marking"]
    sc.mangle4 = [
        "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff",
        "-A PREROUTING -m mark ! --mark 0x0 -j RETURN",
        "-A PREROUTING -j marking",
        "-A FORWARD -p udp -m udp --dport 5001 -j MARK --set-xmark 0x100/0x100",
        '-A FORWARD -m mark --mark 0x100/0x100 -j LOG --log-prefix "swlogmark-mangle: "',
        "-A marking -m physdev --physdev-in lan -p tcp -j MARK --set-xmark 0x1/0xffffffff",
        "-A marking -m physdev --physdev-in lan -p udp -j MARK --set-xmark 0x2/0xffffffff",
        "-A marking -m physdev --physdev-in wan -j MARK --set-xmark 0x4/0xf",
        "-A marking -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff",
    ]
    sc.filter4 = [
        "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
        "-A FORWARD -m connmark --mark 0x1/0xff -j ACCEPT",
        '-A FORWARD -m mark --mark 0x2/0xf -m connmark ! --mark 0x1 -j LOG --log-prefix "swlogmark-fwd: "',
        "-A FORWARD -m mark --mark 0x102/0xfff -j CONNMARK --set-xmark 0x20/0xf0",
        "-A FORWARD -m connmark --mark 0x22/0xff -j ACCEPT",
        "-A FORWARD -m connmark --mark 0x2 -j ACCEPT",
    ]
    # TCP from the client: marked 0x1, accepted both ways by its connection's mark.
    t = Tcp(sc, cport=42200, sport=80)
    t.handshake()
    t.seg("c", "PA", b"GET / HTTP/1.0\r\n\r\n")
    t.seg("s", "PA", b"HTTP/1.0 200 OK\r\n\r\n")
    # UDP from the client: 0x2, logged in filter, accepted by its connection's mark both ways.
    sc.send("c", udp("c", 33400, 5000, b"two"))
    sc.send("s", udp("s", 5000, 33400, b"two back"))
    # To 5001: mangle FORWARD adds 0x100, filter moves the connection to 0x22.
    sc.send("c", udp("c", 33401, 5001, b"three"))
    sc.send("s", udp("s", 5001, 33401, b"three back"))
    sc.send("c", udp("c", 33401, 5001, b"three again"))
    # raw's mark is replaced by the restored (zero) connection mark, then marked 0x2.
    sc.send("c", udp("c", 33402, 5002, b"raw"))
    # From the server: 0x4, nothing accepts it.
    sc.send("s", udp("s", 5353, 33403, b"unasked"))
    # Active FTP: the server's data connection is RELATED and starts with the control
    # connection's 0x1 (restored, so not re-marked 0x4 as a new connection from wan is).
    c = ftp_login(sc, cport=40810)
    c.seg("c", "PA", b"PORT 10,10,0,2,156,65\r\n")
    c.seg("s", "PA", b"200 Command okay.\r\n")
    c.seg("c", "PA", b"RETR file\r\n")
    data_conn(sc, "s", 40001, 20)
    # A second one is NEW from wan: 0x4, dropped.
    data_conn(sc, "s", 40002, 20)
    c.seg("s", "PA", b"226 Transfer complete.\r\n")
    c.seg("c", "A")
