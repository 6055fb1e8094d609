"""The FTP helper: passive (PASV, EPSV) and active (PORT, EPRT) mode over IPv4 and IPv6,
with and without the helper, and how it parses what it reads."""

from __future__ import annotations

from ..dsl import ALLOW_FTP, ALLOW_FTP6, Tcp, scenario


def ftp_login(sc, v6=False, cport=40800):
    t = Tcp(sc, cport=cport, sport=21, v6=v6)
    t.handshake()
    t.seg("s", "PA", b"220 statewall lab ftp\r\n")
    t.seg("c", "A")
    t.seg("c", "PA", b"USER anonymous\r\n")
    t.seg("s", "PA", b"331 Please specify the password.\r\n")
    t.seg("c", "PA", b"PASS lab@\r\n")
    t.seg("s", "PA", b"230 Login successful.\r\n")
    return t


def data_conn(sc, opener, cport, sport, v6=False):
    """A data connection opened by `opener` ('c' or 's'): its port `cport` on the client,
    `sport` on the server."""
    t = Tcp(sc, cport=cport, sport=sport, v6=v6, cisn=7_000_000, sisn=8_000_000)
    if opener == "c":
        t.seg("c", "S")
        t.seg("s", "SA")
        t.seg("c", "A")
        t.seg("s", "PA", b"file contents\n")
        t.seg("c", "A")
    else:
        t.seg("s", "S")
        t.seg("c", "SA")
        t.seg("s", "A")
        t.seg("s", "PA", b"file contents\n")
        t.seg("c", "A")
    return t


def ftp_passive(sc, cmd: bytes, reply: bytes, port: int, v6=False):
    t = ftp_login(sc, v6=v6)
    t.seg("c", "PA", cmd)
    t.seg("s", "PA", reply)
    t.seg("c", "A")
    data_conn(sc, "c", 41001, port, v6=v6)
    data_conn(sc, "c", 41002, port, v6=v6)  # the expectation is single use
    data_conn(sc, "c", 41003, port + 1, v6=v6)  # the next port
    t.seg("s", "PA", b"226 Transfer complete.\r\n")
    t.seg("c", "A")


def ftp_active(sc, cmd: bytes, port: int, v6=False):
    t = ftp_login(sc, v6=v6)
    t.seg("c", "PA", cmd)
    t.seg("s", "PA", b"200 Command okay.\r\n")
    t.seg("c", "PA", b"RETR file\r\n")
    data_conn(sc, "s", port, 20, v6=v6)
    t2 = data_conn(sc, "s", port, 2020, v6=v6)  # single use: a second connection to it
    del t2
    data_conn(sc, "s", port + 1, 20, v6=v6)  # the next port
    t.seg("s", "PA", b"226 Transfer complete.\r\n")
    t.seg("c", "A")


def ftp_rules(sc, helper: bool, v6=False):
    if v6:
        sc.stateful(allow6=(ALLOW_FTP6,))
    else:
        sc.stateful(ALLOW_FTP)
    if helper:
        sc.ftp_helper(21, v6=v6)


@scenario
def ftp_pasv_helper(sc):
    """FTP helper on port 21: PASV, 227 reply; the data connection's SYN is RELATED, then ESTABLISHED; the same port again and the next port are NEW (dropped)."""
    ftp_rules(sc, True)
    ftp_passive(sc, b"PASV\r\n", b"227 Entering Passive Mode (10,10,0,3,195,80).\r\n", 50000)


@scenario
def ftp_pasv_no_helper(sc):
    """The FTP PASV conversation without the helper: the data connection is NEW and the ruleset (RELATED only for data) drops it."""
    ftp_rules(sc, False)
    ftp_passive(sc, b"PASV\r\n", b"227 Entering Passive Mode (10,10,0,3,195,80).\r\n", 50000)


@scenario
def ftp_epsv_helper(sc):
    """FTP helper: EPSV, 229 reply; data connection RELATED, the same port again and the next port NEW."""
    ftp_rules(sc, True)
    ftp_passive(sc, b"EPSV\r\n", b"229 Entering Extended Passive Mode (|||50010|)\r\n", 50010)


@scenario
def ftp_port_helper(sc):
    """FTP helper: active mode PORT; the server's data connection from port 20 is RELATED, a second one and the next port NEW."""
    ftp_rules(sc, True)
    ftp_active(sc, b"PORT 10,10,0,2,156,64\r\n", 40000)


@scenario
def ftp_port_no_helper(sc):
    """Active mode PORT without the helper: the server's data connection is NEW and dropped."""
    ftp_rules(sc, False)
    ftp_active(sc, b"PORT 10,10,0,2,156,64\r\n", 40000)


@scenario
def ftp_eprt_helper(sc):
    """FTP helper: EPRT |1|10.10.0.2|40010|; the server's data connection is RELATED."""
    ftp_rules(sc, True)
    ftp_active(sc, b"EPRT |1|10.10.0.2|40010|\r\n", 40010)


@scenario
def ftp_eprt_no_helper(sc):
    """EPRT without the helper: the server's data connection is NEW and dropped."""
    ftp_rules(sc, False)
    ftp_active(sc, b"EPRT |1|10.10.0.2|40010|\r\n", 40010)


@scenario
def ftp_ipv6_eprt_helper(sc):
    """FTP over IPv6 with the helper: EPRT |2|fd00::2|40020|; the server's data connection is RELATED."""
    ftp_rules(sc, True, v6=True)
    ftp_active(sc, b"EPRT |2|fd00::2|40020|\r\n", 40020, v6=True)


@scenario
def ftp_ipv6_epsv_helper(sc):
    """FTP over IPv6 with the helper: EPSV, 229 reply; the data connection is RELATED."""
    ftp_rules(sc, True, v6=True)
    ftp_passive(sc, b"EPSV\r\n", b"229 Entering Extended Passive Mode (|||50020|)\r\n", 50020,
                v6=True)


@scenario
def ftp_ipv6_epsv_no_helper(sc):
    """FTP over IPv6 without the helper: EPSV; the data connection is NEW and dropped."""
    ftp_rules(sc, False, v6=True)
    ftp_passive(sc, b"EPSV\r\n", b"229 Entering Extended Passive Mode (|||50020|)\r\n", 50020,
                v6=True)


@scenario
def ftp_split_command(sc):
    """FTP helper: a 227 reply split over two segments and a PORT with a wrong address create nothing; data connections NEW."""
    ftp_rules(sc, True)
    t = ftp_login(sc)
    t.seg("c", "PA", b"PASV\r\n")
    t.seg("s", "PA", b"227 Entering Passive Mo")
    t.seg("s", "PA", b"de (10,10,0,3,195,90).\r\n")
    t.seg("c", "A")
    data_conn(sc, "c", 41010, 50010)
    t.seg("c", "PA", b"PORT 10,10,0,9,156,74\r\n")
    t.seg("s", "PA", b"200 Command okay.\r\n")
    data_conn(sc, "s", 40010, 20)


@scenario
def ftp_first_segment_not_parsed(sc):
    """FTP helper: a 227 reply in the server's very first segment is not searched (no newline seen yet): the data connection is NEW."""
    ftp_rules(sc, True)
    t = Tcp(sc, cport=40810, sport=21)
    t.handshake()
    t.seg("s", "PA", b"227 Entering Passive Mode (10,10,0,3,195,100).\r\n")
    t.seg("c", "A")
    data_conn(sc, "c", 41020, 50020)


@scenario
def ftp_format_edges(sc):
    """FTP helper: a lowercase `port` command (accepted), then a 229 reply with `!` delimiters, then a 227 reply without parentheses."""
    ftp_rules(sc, True)
    t = ftp_login(sc)
    t.seg("c", "PA", b"port 10,10,0,2,156,84\r\n")
    t.seg("s", "PA", b"200 Command okay.\r\n")
    data_conn(sc, "s", 40020, 20)
    t.seg("c", "PA", b"EPSV\r\n")
    t.seg("s", "PA", b"229 Entering Extended Passive Mode (!!!50030!)\r\n")
    t.seg("c", "A")
    data_conn(sc, "c", 41030, 50030)
    t.seg("c", "PA", b"PASV\r\n")
    t.seg("s", "PA", b"227 Entering Passive Mode 10,10,0,3,195,120\r\n")
    t.seg("c", "A")
    data_conn(sc, "c", 41040, 50040)


@scenario
def ftp_helper_other_port(sc):
    """The FTP helper on port 2121 only: a conversation on 2121 gets RELATED data, the same on port 21 does not."""
    sc.stateful("-A FORWARD -s 10.10.0.2/32 -p tcp -m multiport --dports 21,2121 -m conntrack --ctstate NEW -j ACCEPT")
    sc.ftp_helper(2121)
    t = Tcp(sc, cport=40850, sport=2121)
    t.handshake()
    t.seg("s", "PA", b"220 hi\r\n")
    t.seg("c", "PA", b"USER a\r\n")
    t.seg("s", "PA", b"331 ok\r\n")
    t.seg("c", "PA", b"PASV\r\n")
    t.seg("s", "PA", b"227 Entering Passive Mode (10,10,0,3,195,150).\r\n")
    t.seg("c", "A")
    data_conn(sc, "c", 41050, 50070)
    u = Tcp(sc, cport=40851, sport=21)
    u.handshake()
    u.seg("s", "PA", b"220 hi\r\n")
    u.seg("c", "PA", b"USER a\r\n")
    u.seg("s", "PA", b"331 ok\r\n")
    u.seg("c", "PA", b"PASV\r\n")
    u.seg("s", "PA", b"227 Entering Passive Mode (10,10,0,3,195,160).\r\n")
    u.seg("c", "A")
    data_conn(sc, "c", 41060, 50080)
