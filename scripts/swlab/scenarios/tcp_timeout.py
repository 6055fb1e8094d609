"""TCP timeouts (short ones set through sysctls; these scenarios wait real seconds)."""

from __future__ import annotations

from ..dsl import ALLOW_HTTP, Tcp, scenario


@scenario
def tcp_timeout_established(sc):
    """tcp_timeout_established = 2: after 3.5 s of silence the entry is gone; the next ACK is NEW (loose pickup)."""
    sc.stateful(ALLOW_HTTP)
    sc.sysctl["tcp_timeout_established"] = 2
    t = Tcp(sc)
    t.handshake()
    t.seg("c", "PA", b"before\n")
    t.seg("s", "A")
    t.seg("s", "PA", b"after the timeout\n", gap=3.5)
    t.seg("c", "PA", b"after the timeout\n")
    t.seg("s", "A")


@scenario
def tcp_timeout_syn_sent(sc):
    """tcp_timeout_syn_sent = 2: a SYN-ACK 3.5 s after the SYN finds no entry; a SYN within the timeout is still fine."""
    sc.stateful(ALLOW_HTTP)
    sc.sysctl["tcp_timeout_syn_sent"] = 2
    t = Tcp(sc)
    t.seg("c", "S")
    t.seg("s", "SA", gap=3.5)
    t.seg("c", "A")
    t2 = Tcp(sc, cport=40400)
    t2.seg("c", "S")
    t2.seg("s", "SA", gap=1.0)
    t2.seg("c", "A")


@scenario
def tcp_max_retrans(sc):
    """tcp_max_retrans = 3, tcp_timeout_max_retrans = 2: the same unacknowledged segment sent four times shortens the timeout; 3 s later the entry is gone."""
    sc.stateful(ALLOW_HTTP)
    sc.sysctl["tcp_max_retrans"] = 3
    sc.sysctl["tcp_timeout_max_retrans"] = 2
    t = Tcp(sc)
    t.handshake()
    seq = t.nxt["c"]
    for _ in range(4):
        t.seg("c", "PA", b"retransmitted\n", seq=seq, gap=0.05)
    t.seg("s", "PA", b"server after 3s\n", gap=3.0)
    t.seg("c", "PA", b"client after 3s\n", seq=seq + 14)


@scenario
def tcp_timeout_unacknowledged(sc):
    """tcp_timeout_unacknowledged = 2: data the server never acknowledges; 3 s later the server's packet finds no entry."""
    sc.stateful(ALLOW_HTTP)
    sc.sysctl["tcp_timeout_unacknowledged"] = 2
    t = Tcp(sc)
    t.handshake()
    t.seg("c", "PA", b"never acknowledged\n")
    t.seg("s", "PA", b"late\n", ack=t.nxt["c"] - 19, gap=3.0)


@scenario
def tcp_timeout_time_wait(sc):
    """tcp_timeout_time_wait = 2: a late ACK within TIME_WAIT is ESTABLISHED; one after it expired is picked up as NEW."""
    sc.stateful(ALLOW_HTTP)
    sc.sysctl["tcp_timeout_time_wait"] = 2
    t = Tcp(sc)
    t.handshake()
    t.seg("c", "FA")
    t.seg("s", "FA")
    t.seg("c", "A")
    t.seg("c", "A", seq=t.nxt["c"], gap=1.0)
    t.seg("c", "A", seq=t.nxt["c"], gap=2.5)
