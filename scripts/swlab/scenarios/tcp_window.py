"""TCP: windows, window scaling, SACK, and the tcp_loose / tcp_be_liberal sysctls."""

from __future__ import annotations

from ..dsl import ALLOW_HTTP, Tcp, data_exchange, scenario


def small_window_conn(sc, swin=1000):
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc, swin=swin)
    t.handshake()
    return t


@scenario
def tcp_window_edge_exact(sc):
    """Server window 1000: data ending exactly at the window edge, then a segment starting exactly at the edge."""
    t = small_window_conn(sc)
    base = t.nxt["c"]
    t.seg("c", "PA", b"a" * 400)
    t.seg("c", "PA", b"b" * 600)  # ends at base + 1000 = the edge
    t.seg("c", "PA", b"c" * 10)  # starts at the edge
    t.seg("s", "A", ack=base + 1000)
    t.seg("s", "A")


@scenario
def tcp_window_overshoot(sc):
    """Server window 1000: a segment starting one byte past the edge, then one 1500 bytes past it."""
    t = small_window_conn(sc)
    base = t.nxt["c"]
    t.seg("c", "PA", b"a" * 100)
    t.seg("c", "PA", b"o" * 10, seq=base + 1001)
    t.seg("c", "PA", b"p" * 10, seq=base + 2500)
    t.seg("s", "A", ack=base + 100)
    t.seg("c", "PA", b"q" * 10)


@scenario
def tcp_data_beyond_window(sc):
    """Data far beyond the receiver's window (INVALID), data far below it (old retransmission), then normal data."""
    t = small_window_conn(sc, swin=8000)
    base = t.nxt["c"]
    t.seg("c", "PA", b"x" * 50, seq=base + 500_000)
    t.seg("c", "PA", b"y" * 50, seq=base - 300_000)
    t.seg("c", "PA", b"z" * 50)
    t.seg("s", "A")


@scenario
def tcp_ack_unsent_data(sc):
    """ACKs of data the other side never sent (just over and far over), and one far below (too old)."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    data_exchange(t)
    t.seg("c", "A", ack=t.nxt["s"] + 1)
    t.seg("c", "A", ack=t.nxt["s"] + 100_000)
    t.seg("s", "A", ack=t.nxt["c"] - 500_000)
    t.seg("c", "PA", b"fine\n")
    t.seg("s", "A")


@scenario
def tcp_window_scaling(sc):
    """Window scale 7 both ways: the server advertises 4 (512 bytes); segments inside and past the scaled window."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc, cwin=502, swin=4)
    t.seg("c", "S", win=64240, opts=[("MSS", 1460), ("WScale", 7)])
    t.seg("s", "SA", win=65160, opts=[("MSS", 1460), ("WScale", 7)])
    t.seg("c", "A")
    base = t.nxt["c"]
    t.seg("c", "PA", b"a" * 500)
    t.seg("c", "PA", b"b" * 10, seq=base + 600)
    t.seg("c", "PA", b"c" * 10, seq=base + 100_000)
    t.seg("s", "A", ack=base + 500, win=600)
    t.seg("c", "PA", b"d" * 1000, seq=base + 500)


@scenario
def tcp_zero_window(sc):
    """The server advertises a zero window: a one-byte probe, then two bytes beyond; the server opens the window."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    t.seg("c", "PA", b"q" * 100)
    t.seg("s", "A", win=0)
    base = t.nxt["c"]
    t.seg("c", "A", b"1", advance=False)
    t.seg("c", "A", b"23", seq=base + 1)
    t.seg("c", "A", b"4", seq=base + 3000)
    t.seg("s", "A", win=5000)
    t.seg("c", "PA", b"window open\n")


@scenario
def tcp_sack(sc):
    """SACK permitted both ways: an ACK whose SACK block stays inside sent data, and one whose SACK block covers data never sent."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.seg("c", "S", opts=[("MSS", 1460), ("SAckOK", b"")])
    t.seg("s", "SA", opts=[("MSS", 1460), ("SAckOK", b"")])
    t.seg("c", "A")
    base = t.nxt["s"]
    t.seg("s", "PA", b"a" * 300)
    t.seg("c", "A", ack=base, opts=[("NOP", None), ("NOP", None), ("SAck", (base + 100, base + 300))])
    t.seg("c", "A", ack=base, opts=[("NOP", None), ("NOP", None), ("SAck", (base + 100, base + 90_000))])
    t.seg("c", "A")


@scenario
def tcp_wscale_one_side(sc):
    """Only the client offers window scaling, so neither side scales: the client's window 100 means 100 bytes."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc, cwin=100)
    t.seg("c", "S", win=64240, opts=[("MSS", 1460), ("WScale", 7)])
    t.seg("s", "SA")
    t.seg("c", "A")
    base = t.nxt["s"]
    t.seg("s", "PA", b"s" * 100)
    t.seg("s", "PA", b"t" * 10, seq=base + 102)
    t.seg("s", "PA", b"u" * 10, seq=base + 5000)
    t.seg("c", "A", ack=base + 100)


@scenario
def tcp_loose_on(sc):
    """tcp_loose = 1 (default): a mid-stream ACK with data picks the connection up (NEW); the server's answer is ESTABLISHED."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.seg("c", "PA", b"mid-stream\n")
    t.seg("s", "A")
    t.seg("s", "PA", b"answer\n")
    t.seg("c", "A")
    Tcp(sc, cport=40300).seg("c", "A")


@scenario
def tcp_loose_off(sc):
    """tcp_loose = 0: a mid-stream ACK is INVALID; a SYN still opens a connection."""
    sc.stateful(ALLOW_HTTP)
    sc.sysctl["tcp_loose"] = 0
    t = Tcp(sc)
    t.seg("c", "PA", b"mid-stream\n")
    t.seg("s", "A")
    t2 = Tcp(sc, cport=40301)
    t2.handshake()


@scenario
def tcp_loose_pickup_window(sc):
    """tcp_loose = 1: after a mid-stream pickup the window is learned from both sides; data far away before and after the server's first packet."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    base = t.nxt["c"]
    t.seg("c", "A", b"pickup\n")
    t.seg("c", "A", b"far\n", seq=base + 900_000)
    t.seg("s", "A", ack=base + 7)
    t.seg("c", "A", b"farther\n", seq=base + 3_000_000)
    t.seg("s", "A", ack=base + 7, seq=t.nxt["s"] + 3_000_000)


@scenario
def tcp_be_liberal(sc):
    """tcp_be_liberal = 1: data far outside the window is accepted; an out-of-window RST still is not."""
    sc.stateful(ALLOW_HTTP)
    sc.sysctl["tcp_be_liberal"] = 1
    t = Tcp(sc, swin=1000)
    t.handshake()
    base = t.nxt["c"]
    t.seg("c", "PA", b"x" * 50, seq=base + 500_000)
    t.seg("c", "A", ack=t.nxt["s"] + 70_000)
    t.seg("c", "R", seq=base + 3_000_000, opts=[])
    t.seg("c", "PA", b"normal\n")
    t.seg("s", "A")
