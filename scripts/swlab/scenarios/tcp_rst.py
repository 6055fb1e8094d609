"""TCP: RST in every state, in and out of the window."""

from __future__ import annotations

from ..dsl import ALLOW_HTTP, Tcp, data_exchange, scenario


@scenario
def tcp_rst_refused(sc):
    """SYN answered by RST-ACK (connection refused); the client retries the SYN."""
    sc.stateful("-A FORWARD -s 10.10.0.2/32 -p tcp -m tcp --dport 81 -m conntrack --ctstate NEW -j ACCEPT")
    t = Tcp(sc, sport=81)
    syn = t.nxt["c"]
    t.seg("c", "S")
    t.seg("s", "RA", seq=0, win=0, opts=[])
    t.seg("c", "S", seq=syn, gap=0.2)
    t.seg("s", "SA")
    t.seg("c", "A")


@scenario
def tcp_rst_exact(sc):
    """Established; the client's RST with exactly the next sequence number; then the server's late data."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("c", "R", opts=[])
    t.seg("s", "PA", b"after the reset\n")
    t.seg("c", "A")


@scenario
def tcp_rst_in_window(sc):
    """Established; an RST in the window but not exact (kept established for a challenge ACK), the challenge ACK, then the exact RST."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("c", "R", seq=t.nxt["c"] + 1000, opts=[])
    t.seg("s", "A")
    t.seg("c", "PA", b"still here\n")
    t.seg("s", "A")
    t.seg("c", "R", opts=[])
    t.seg("s", "PA", b"too late\n")


@scenario
def tcp_rst_out_of_window(sc):
    """Established; RSTs far outside the window from each side; the connection carries on."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("c", "R", seq=t.nxt["c"] + 3_000_000, opts=[])
    t.seg("s", "RA", seq=t.nxt["s"] - 2_000_000, opts=[])
    t.seg("c", "PA", b"carry on\n")
    t.seg("s", "A")


@scenario
def tcp_rst_bad_seq_established(sc):
    """Established; an RST whose seq is below what the receiver already acknowledged; then RST-ACK with the right seq."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("c", "PA", b"0123456789" * 5)
    t.seg("s", "A")
    t.seg("c", "R", seq=t.nxt["c"] - 20, opts=[])
    t.seg("c", "PA", b"ok\n")
    t.seg("s", "RA", opts=[])
    t.seg("c", "A")


@scenario
def tcp_rst_ignore_invalid(sc):
    """tcp_ignore_invalid_rst = 1: an out-of-window RST; the connection carries on."""
    sc.stateful(ALLOW_HTTP)
    sc.sysctl["tcp_ignore_invalid_rst"] = 1
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("c", "R", seq=t.nxt["c"] + 3_000_000, opts=[])
    t.seg("c", "PA", b"carry on\n")
    t.seg("s", "A")


@scenario
def tcp_rst_syn_sent(sc):
    """RST answers to a SYN: without ACK, with a wrong ACK, and finally RST-ACK with the right ACK; then a new SYN."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    isn = t.nxt["c"]
    t.seg("c", "S")
    t.seg("s", "R", seq=0, win=0, opts=[])
    t.seg("s", "RA", seq=0, ack=isn + 77, win=0, opts=[])
    t.seg("s", "RA", seq=0, win=0, opts=[])
    t2 = Tcp(sc, cisn=isn + 50_000)
    t2.seg("c", "S", gap=0.1)
    t2.seg("s", "SA")
