"""TCP: opening, data, closing, SYN and flag edge cases."""

from __future__ import annotations

from ..dsl import ALLOW_HTTP, Tcp, data_exchange, scenario


@scenario
def tcp_handshake(sc):
    """SYN, SYN-ACK, ACK to an allowed port; a SYN to a port the rules do not allow."""
    sc.stateful(ALLOW_HTTP)
    Tcp(sc).handshake()
    Tcp(sc, cport=40001, sport=81).seg("c", "S")


@scenario
def tcp_data_both_ways(sc):
    """Handshake, request and response with ACKs, more data both ways (PSH)."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("c", "PA", b"more from the client\n")
    t.seg("s", "PA", b"more from the server\n")
    t.seg("c", "A")


@scenario
def tcp_fin_close(sc):
    """Client closes first: FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT; a late ACK in TIME_WAIT."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("c", "FA")
    t.seg("s", "A")
    t.seg("s", "FA")
    t.seg("c", "A")
    t.seg("c", "A", seq=t.nxt["c"], gap=0.05)  # duplicate final ACK (new IP id)


@scenario
def tcp_fin_simultaneous(sc):
    """Both sides send FIN before seeing the other's; then both ACK."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    cfin = t.nxt["c"]
    sfin = t.nxt["s"]
    t.seg("c", "FA", ack=sfin)
    t.seg("s", "FA", ack=cfin)
    t.seg("c", "A")
    t.seg("s", "A")


@scenario
def tcp_fin_server_first(sc):
    """Server closes first with data in flight; client sends data after the server's FIN, then closes."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("s", "FA")
    t.seg("c", "PA", b"late data\n")
    t.seg("s", "A")
    t.seg("c", "FA")
    t.seg("s", "A")


@scenario
def tcp_syn_on_time_wait(sc):
    """Full close to TIME_WAIT, then a new SYN on the same ports re-opens the connection."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("c", "FA")
    t.seg("s", "FA")
    t.seg("c", "A")
    t.seg("s", "A", gap=0.02)
    t2 = Tcp(sc, cisn=t.nxt["c"] + 100_000, sisn=9_000_000)
    t2.handshake()
    t2.seg("c", "PA", b"second life\n")
    t2.seg("s", "A")


@scenario
def tcp_retransmitted_syn(sc):
    """SYN, the same SYN retransmitted, a SYN with another ISN, then SYN-ACK and ACK."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.seg("c", "S", advance=False)
    t.seg("c", "S", gap=0.3)
    t2 = Tcp(sc, cisn=2_000_000)
    t2.seg("c", "S", gap=0.3)
    t2.seg("s", "SA")
    t2.seg("c", "A")
    t2.seg("s", "SA", seq=t2.nxt["s"] - 1, ack=t2.nxt["c"])  # retransmitted SYN-ACK
    t2.seg("c", "PA", b"hi\n")


@scenario
def tcp_simultaneous_open(sc):
    """Both sides send SYN (SYN_SENT2), then SYN-ACKs both ways, then data."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    cisn, sisn = t.nxt["c"], t.nxt["s"]
    t.seg("c", "S")
    t.seg("s", "S")
    t.seg("c", "SA", seq=cisn)
    t.seg("s", "SA", seq=sisn)
    t.seg("c", "A")
    t.seg("c", "PA", b"simultaneous\n")
    t.seg("s", "A")


@scenario
def tcp_dropped_new_leaves_no_state(sc):
    """A SYN the rules drop confirms nothing: the server's SYN-ACK is then a packet of no flow."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc, sport=23)
    t.seg("c", "S")
    t.seg("s", "SA")
    t.seg("c", "A")


@scenario
def tcp_syn_in_established_resync(sc):
    """A SYN with a new ISN on an established connection is ignored (passes, no state change); the server's SYN-ACK for it resynchronises; the new sequence space then works."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t2 = Tcp(sc, cisn=t.nxt["c"] + 10_000_000, sisn=t.nxt["s"] + 20_000_000)
    t2.seg("c", "S")
    t2.seg("s", "SA")
    t2.seg("c", "A")
    t2.seg("c", "PA", b"new sequence space\n")
    t2.seg("s", "A")


@scenario
def tcp_ignored_ack_in_syn_sent(sc):
    """After a SYN, the server's plain ACK (no SYN) is ignored; an orig-direction SYN-ACK is INVALID; then the real SYN-ACK."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.seg("c", "S")
    t.seg("s", "A", seq=t.nxt["s"] + 1)
    t.seg("c", "SA", seq=t.nxt["c"] - 1, ack=t.nxt["s"])
    t.seg("c", "F", seq=t.nxt["c"], opts=[])
    t.seg("s", "SA")
    t.seg("c", "A")


@scenario
def tcp_synack_bad_ack(sc):
    """SYN-ACKs acknowledging more than the SYN and far less, then the right one."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.seg("c", "S")
    t.seg("s", "SA", ack=t.nxt["c"] + 5)
    t.seg("s", "SA", ack=t.nxt["c"] - 100_000)
    t.seg("s", "SA")
    t.seg("c", "A")


@scenario
def tcp_data_after_fin(sc):
    """The client sends FIN, then data beyond its FIN; a SYN with payload on another connection."""
    sc.stateful(ALLOW_HTTP, drop_invalid=False)
    t = Tcp(sc)
    t.handshake()
    t.seg("c", "FA")
    t.seg("s", "A")
    t.seg("c", "PA", b"after fin\n")
    t.seg("s", "FA")
    t.seg("c", "A")
    t2 = Tcp(sc, cport=40900)
    t2.seg("c", "S", b"syn data")
    t2.seg("s", "SA")
    t2.seg("c", "A")


@scenario
def tcp_bad_flags(sc):
    """Established; SYN+FIN, no flags, FIN alone, SYN+RST, FIN+PSH+URG, then valid data; SYN+FIN as a first packet."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    for fl in ("SF", "", "F", "SR", "FPU"):
        t.seg("c", fl, advance=False, opts=[])
    t.seg("c", "PA", b"valid\n")
    t.seg("s", "A")
    Tcp(sc, cport=40100).seg("c", "SF", opts=[])
    Tcp(sc, cport=40101).seg("c", "", opts=[])


@scenario
def tcp_flags_accepted(sc):
    """Flag combinations the kernel accepts: SYN+ECE+CWR, SYN-ACK+ECE, ACK+URG, PSH+ACK, FIN+ACK+URG; all with INVALID accepted by the rules."""
    sc.stateful(ALLOW_HTTP, drop_invalid=False)
    t = Tcp(sc)
    t.seg("c", "SEC")
    t.seg("s", "SAE")
    t.seg("c", "A")
    t.seg("c", "AU", b"urgent")
    t.seg("s", "PA", b"pushed")
    t.seg("c", "FAU")
    t.seg("s", "FA")
    t.seg("c", "A")
