#!/usr/bin/python3
"""Differential scenarios: crafted captures, and the Linux kernel's answers for them.

  scenarios.py generate [NAME ...]
      (Re)write tests/scenarios/NAME/{packets.pcapng, rules.iptables, sysctl.conf, helpers}
      from the definitions in this file (scapy; all scenarios when no NAME is given). Does not
      touch kernel.jsonl: record the kernel's answers afterwards.
  scenarios.py kernel DIR ... [--out OUTDIR] [--jobs N]
      Root. Replay each scenario's packets.pcapng, byte for byte, into a fresh kernel lab
      and write the kernel's per-packet answers to OUTDIR/NAME.kernel.jsonl (default: DIR/
      kernel.jsonl, i.e. record them). Scenarios run in parallel, each in its own lab.
  scenarios.py list
      The scenarios this file defines, one line each.

The lab (one per scenario; namespaces swdNNc, swdNNg, swdNNs): a client namespace and a
server namespace, each holding one end of a veth pair whose other end (`lan`, `wan`) is a port
of bridge br0 in the gateway namespace; br_netfilter with bridge-nf-call-iptables/ip6tables=1;
the scenario's rules loaded with iptables-legacy-restore / ip6tables-legacy-restore, with
NFLOG rules (group 1, prefix = state) inserted at the top of filter FORWARD; the scenario's
sysctls written in the gateway namespace (conntrack sysctls are per network namespace). The
hosts have no addresses and IPv6 disabled, so their own stacks never speak; crafted frames are
sent from an AF_PACKET socket on the client's (port lan) or server's (port wan) veth and are
addressed to MACs that no host owns (02:00:00:00:00:12 on the lan side, :13 on the wan side),
so the bridge forwards them and the far host ignores them. Offloads are off, so the gateway
verifies every checksum in software.

Per packet: ctstate is the prefix of the NFLOG entry carrying the same packet (null when the
packet never reached filter FORWARD, e.g. a bad IPv4 header checksum dropped by
br_netfilter), verdict is accept when the packet left on the other port. Each packet of a
scenario is unique (distinct IPv4 id / IPv6 flow label), so matching is exact. The lab also
checks that what arrived on lan and wan is exactly the scenario's packets, in order, nothing
else.

Timestamps in packets.pcapng are the schedule: the live replay waits the same gaps (real time,
for the timeout scenarios) and statewall replay reads them as its clock.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import fcntl
import threading
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pcapng  # noqa: E402

REPO = os.path.dirname(HERE)
SCEN_DIR = os.path.join(REPO, "tests", "scenarios")

C4, S4, R4 = "10.10.0.2", "10.10.0.3", "10.10.0.254"
C6, S6, R6 = "fd00::2", "fd00::3", "fd00::fe"
CMAC, SMAC = "02:00:00:00:00:12", "02:00:00:00:00:13"
T0 = 1_700_000_000.0  # schedule start (capture timestamps)
GAP = 0.01  # default gap between packets, seconds

# ---------------------------------------------------------------------------------------
# Building scenarios (scapy is imported lazily: the kernel/list commands do not need it)

S = None  # the scapy namespace, once loaded


def scapy():
    global S
    if S is None:
        import importlib
        import logging

        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
        S = importlib.import_module("scapy.all")
    return S


class Scenario:
    def __init__(self, name: str, doc: str):
        self.name, self.doc = name, doc
        self.frames: list[tuple[int, str, bytes]] = []
        self.t = T0
        self.uid = 0x1100
        self.filter4: list[str] = []
        self.filter6: list[str] = []
        self.raw4: list[str] = []
        self.raw6: list[str] = []
        self.policy = "DROP"
        self.sysctl: dict[str, int] = {}
        self.helpers: list[str] = []

    # rules ------------------------------------------------------------------------------
    def stateful(self, *allow4: str, allow6: tuple[str, ...] = (), drop_invalid=True):
        """INVALID dropped, ESTABLISHED/RELATED accepted, then the given rules, policy DROP."""
        head = []
        if drop_invalid:
            head.append("-A FORWARD -m conntrack --ctstate INVALID -j DROP")
        head.append("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        self.filter4 = head + list(allow4)
        self.filter6 = head + list(allow6)
        return self

    def ftp_helper(self, port=21, v6=False):
        rule = f"-A PREROUTING -p tcp -m tcp --dport {port} -j CT --helper ftp"
        (self.raw6 if v6 else self.raw4).append(rule)
        line = f"ftp tcp {port}"
        if line not in self.helpers:
            self.helpers.append(line)

    # packets ----------------------------------------------------------------------------
    def send(self, side: str, pkt, gap: float = GAP, keep_id=False, mangle=None):
        """Queue an IP/IPv6 scapy packet from side 'c' (port lan) or 's' (port wan), `gap`
        seconds after the previous one. Every packet gets a fresh IPv4 id / IPv6 flow label
        unless keep_id. `mangle` edits the final frame bytes (bad checksums, truncation)."""
        sc = scapy()
        self.uid += 1
        if sc.IP in pkt and not keep_id:
            pkt[sc.IP].id = self.uid
        if sc.IPv6 in pkt and not keep_id:
            pkt[sc.IPv6].fl = self.uid
        src, dst = (CMAC, SMAC) if side == "c" else (SMAC, CMAC)
        if sc.IPv6 in pkt and sc.ICMPv6ND_NS in pkt:
            dst = "33:33:ff:" + ":".join(f"{b:02x}" for b in
                                         __import__("ipaddress").IPv6Address(pkt[sc.IPv6].dst).packed[13:])
        frame = bytes(sc.Ether(src=src, dst=dst) / pkt)
        if mangle:
            frame = mangle(frame)
        self.t += gap
        self.frames.append((round(self.t * 1e9), "lan" if side == "c" else "wan", frame))

    def wait(self, seconds: float):
        self.t += seconds

    # files ------------------------------------------------------------------------------
    def rules_text(self) -> str:
        out = [f"# scenario {self.name}: {self.doc}"]
        for fam, raw, flt in (("iptables", self.raw4, self.filter4),
                              ("ip6tables", self.raw6, self.filter6)):
            out.append(f"# Generated by {fam}-save (statewall scenarios.py)")
            if raw:
                out += ["*raw", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", *raw, "COMMIT"]
            out += ["*filter", ":INPUT ACCEPT [0:0]", f":FORWARD {self.policy} [0:0]",
                    ":OUTPUT ACCEPT [0:0]", *flt, "COMMIT"]
        return "\n".join(out) + "\n"

    def write(self, root: str):
        d = os.path.join(root, self.name)
        os.makedirs(d, exist_ok=True)
        keys = set()
        for i, (_, _, data) in enumerate(self.frames):
            k = pcapng.flow_key(pcapng.LINKTYPE_ETHERNET, data)
            if k in keys:
                raise SystemExit(f"{self.name}: packet {i} is not unique")
            keys.add(k)
        ifaces = [("lan", pcapng.LINKTYPE_ETHERNET), ("wan", pcapng.LINKTYPE_ETHERNET)]
        pcapng.write_pcapng(os.path.join(d, "packets.pcapng"), ifaces,
                            ((ts, 0 if port == "lan" else 1, data)
                             for ts, port, data in self.frames))
        with open(os.path.join(d, "rules.iptables"), "w") as f:
            f.write(self.rules_text())
        for fname, lines in (("sysctl.conf",
                              [f"net.netfilter.nf_conntrack_{k} = {v}"
                               for k, v in self.sysctl.items()]),
                             ("helpers", self.helpers)):
            p = os.path.join(d, fname)
            if lines:
                with open(p, "w") as f:
                    f.write("\n".join(lines) + "\n")
            elif os.path.exists(p):
                os.unlink(p)


def u32(x: int) -> int:
    return x & 0xFFFFFFFF


class Tcp:
    """One TCP conversation between client and server, tracking each side's next sequence
    number so segments get right seq/ack unless told otherwise."""

    def __init__(self, sc: Scenario, cport=40000, sport=80, v6=False, cisn=1_000_000,
                 sisn=5_000_000, cwin=64240, swin=65160, ext=None):
        self.sc, self.v6 = sc, v6
        self.port = {"c": cport, "s": sport}
        self.addr = {"c": C6 if v6 else C4, "s": S6 if v6 else S4}
        self.nxt = {"c": cisn, "s": sisn}
        self.win = {"c": cwin, "s": swin}
        self.ext = ext or {}

    def ip(self, side):
        s = scapy()
        o = "s" if side == "c" else "c"
        if self.v6:
            p = s.IPv6(src=self.addr[side], dst=self.addr[o])
        else:
            p = s.IP(src=self.addr[side], dst=self.addr[o])
        return p / self.ext[side]() if side in self.ext else p

    def seg(self, side, flags="A", data=b"", seq=None, ack=None, win=None, opts=None,
            gap=GAP, mangle=None, advance=True, build_only=False):
        s = scapy()
        o = "s" if side == "c" else "c"
        sq = self.nxt[side] if seq is None else u32(seq)
        ak = (self.nxt[o] if ack is None else u32(ack)) if "A" in flags else 0
        if opts is None:
            opts = [("MSS", 1460)] if "S" in flags else []
        tcp = s.TCP(sport=self.port[side], dport=self.port[o], flags=flags, seq=sq, ack=ak,
                    window=self.win[side] if win is None else win, options=opts)
        pkt = self.ip(side) / tcp
        if data:
            pkt = pkt / s.Raw(data)
        if build_only:
            return pkt
        if seq is None and advance:
            self.nxt[side] = u32(sq + len(data) + ("S" in flags) + ("F" in flags))
        self.sc.send(side, pkt, gap=gap, mangle=mangle)
        return pkt

    def handshake(self, copts=None, sopts=None):
        self.seg("c", "S", opts=copts)
        self.seg("s", "SA", opts=sopts)
        self.seg("c", "A")


def udp(side, sport, dport, data=b"x", v6=False, **kw):
    s = scapy()
    a = {"c": C6 if v6 else C4, "s": S6 if v6 else S4}
    o = "s" if side == "c" else "c"
    l3 = s.IPv6(src=a[side], dst=a[o]) if v6 else s.IP(src=a[side], dst=a[o])
    return l3 / s.UDP(sport=sport, dport=dport, **kw) / s.Raw(data)


def echo(side, ident, seq, reply=False, v6=False, ext=None):
    s = scapy()
    a = {"c": C6 if v6 else C4, "s": S6 if v6 else S4}
    o = "s" if side == "c" else "c"
    if v6:
        l3 = s.IPv6(src=a[side], dst=a[o])
        if ext:
            l3 = l3 / ext
        msg = (s.ICMPv6EchoReply if reply else s.ICMPv6EchoRequest)(id=ident, seq=seq,
                                                                     data=b"ping6")
        return l3 / msg
    return (s.IP(src=a[side], dst=a[o]) / s.ICMP(type=0 if reply else 8, id=ident, seq=seq)
            / s.Raw(b"ping"))


def icmp_error(src, dst, quoted_pkt, typ=3, code=3, v6=False):
    """An ICMP(v6) error from src to dst quoting the IP header + 8 bytes (IPv4) or as much as
    fits (IPv6) of quoted_pkt (a scapy packet as it was sent)."""
    s = scapy()
    q = bytes(quoted_pkt)
    if v6:
        cls = {1: s.ICMPv6DestUnreach, 3: s.ICMPv6TimeExceeded}[typ]
        return s.IPv6(src=src, dst=dst) / cls(code=code) / s.Raw(q[:1232])
    ihl = (q[0] & 0x0F) * 4
    return s.IP(src=src, dst=dst) / s.ICMP(type=typ, code=code) / s.Raw(q[: ihl + 8])


def bad_l4_csum(frame: bytes) -> bytes:
    """Flip bits of the transport checksum (TCP/UDP over IPv4 or IPv6, no extension headers)."""
    info = pcapng.ip_info(pcapng.LINKTYPE_ETHERNET, frame)
    l3 = pcapng.l3_of(pcapng.LINKTYPE_ETHERNET, frame)
    l4off = l3.offset + ((frame[l3.offset] & 0x0F) * 4 if info.family == 4 else 40)
    off = l4off + (16 if info.proto == 6 else 6)
    b = bytearray(frame)
    b[off] ^= 0x5A
    b[off + 1] ^= 0xA5
    return bytes(b)


def bad_ip_csum(frame: bytes) -> bytes:
    b = bytearray(frame)
    b[14 + 10] ^= 0x33
    return bytes(b)


# ---------------------------------------------------------------------------------------
# The scenarios

ALLOW_HTTP = "-A FORWARD -s 10.10.0.2/32 -d 10.10.0.3/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT"
ALLOW_HTTP6 = "-A FORWARD -s fd00::2/128 -d fd00::3/128 -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT"
ALLOW_UDP = "-A FORWARD -s 10.10.0.2/32 -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT"
ALLOW_PING = "-A FORWARD -s 10.10.0.2/32 -p icmp -m icmp --icmp-type 8 -m conntrack --ctstate NEW -j ACCEPT"
ALLOW_FTP = "-A FORWARD -s 10.10.0.2/32 -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT"
ALLOW_FTP6 = "-A FORWARD -s fd00::2/128 -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT"

SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def name_of(fn) -> str:
    return fn.__name__.replace("_", "-")


def doc_of(fn) -> str:
    return " ".join((fn.__doc__ or "").split())


def make(fn) -> Scenario:
    sc = Scenario(name_of(fn), doc_of(fn))
    fn(sc)
    return sc


def data_exchange(t: Tcp):
    t.seg("c", "PA", b"GET / HTTP/1.1\r\nHost: s\r\n\r\n")
    t.seg("s", "A")
    t.seg("s", "PA", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    t.seg("c", "A")


# --- TCP basics -------------------------------------------------------------------------

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


# --- RST --------------------------------------------------------------------------------

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


# --- windows ----------------------------------------------------------------------------

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


# --- flags, checksums, truncation -------------------------------------------------------

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


@scenario
def tcp_bad_checksum(sc):
    """Established; a data segment with a bad TCP checksum, then its good retransmission; a SYN with a bad checksum."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    t.handshake()
    t.seg("c", "PA", b"corrupted\n", advance=False, mangle=bad_l4_csum)
    t.seg("c", "PA", b"corrupted\n")
    t.seg("s", "A")
    Tcp(sc, cport=40200).seg("c", "S", mangle=bad_l4_csum)


@scenario
def checksum_off(sc):
    """nf_conntrack_checksum = 0: TCP and UDP with bad checksums are tracked like good ones."""
    sc.stateful(ALLOW_HTTP, ALLOW_UDP)
    sc.sysctl["checksum"] = 0
    t = Tcp(sc)
    t.seg("c", "S", mangle=bad_l4_csum)
    t.seg("s", "SA")
    t.seg("c", "A")
    t.seg("c", "PA", b"bad sum\n", mangle=bad_l4_csum)
    sc.send("c", udp("c", 33000, 53, b"query"), mangle=bad_l4_csum)
    sc.send("s", udp("s", 53, 33000, b"answer"))


@scenario
def udp_bad_checksum(sc):
    """UDP with a bad checksum (INVALID), with checksum 0 (none: valid over IPv4), then a reply."""
    sc.stateful(ALLOW_UDP)
    sc.send("c", udp("c", 33001, 53, b"bad"), mangle=bad_l4_csum)
    sc.send("c", udp("c", 33002, 53, b"nosum", chksum=0))
    sc.send("s", udp("s", 53, 33002, b"answer"))
    sc.send("c", udp("c", 33001, 53, b"good"))


@scenario
def ipv4_bad_header_checksum(sc):
    """A bad IPv4 header checksum (br_netfilter drops it before conntrack: no ctstate) on a SYN and a UDP datagram, then the good SYN."""
    sc.stateful(ALLOW_HTTP, ALLOW_UDP)
    t = Tcp(sc)
    t.seg("c", "S", advance=False, mangle=bad_ip_csum)
    sc.send("c", udp("c", 33003, 53, b"q"), mangle=bad_ip_csum)
    t.seg("c", "S")
    t.seg("s", "SA")
    t.seg("s", "A", mangle=bad_ip_csum, advance=False)
    t.seg("c", "A")


def trunc_l4(keep: int):
    """Cut the IPv4 datagram to its header + `keep` transport bytes (fixing total length and
    header checksum)."""
    def f(frame: bytes) -> bytes:
        ihl = (frame[14] & 0x0F) * 4
        b = bytearray(frame[: 14 + ihl + keep])
        b[16:18] = (ihl + keep).to_bytes(2, "big")
        b[24:26] = b"\0\0"
        s = sum(int.from_bytes(b[14 + i: 16 + i], "big") for i in range(0, ihl, 2))
        while s > 0xFFFF:
            s = (s & 0xFFFF) + (s >> 16)
        b[24:26] = (~s & 0xFFFF).to_bytes(2, "big")
        return bytes(b)
    return f


def set_doff(doff: int):
    def f(frame: bytes) -> bytes:
        ihl = (frame[14] & 0x0F) * 4
        b = bytearray(frame)
        b[14 + ihl + 12] = (doff << 4) | (b[14 + ihl + 12] & 0x0F)
        return bytes(b)
    return f


@scenario
def truncated_headers(sc):
    """TCP cut to 12 and to 2 bytes, a TCP data offset past the end and one below 5, UDP cut to 6 bytes, a UDP length beyond the datagram; then a good SYN and datagram."""
    sc.stateful(ALLOW_HTTP, ALLOW_UDP)
    t = Tcp(sc)
    t.seg("c", "S", advance=False, mangle=trunc_l4(12))
    t.seg("c", "S", advance=False, mangle=trunc_l4(2))
    t.seg("c", "S", advance=False, mangle=set_doff(15))
    t.seg("c", "S", advance=False, mangle=set_doff(3))
    sc.send("c", udp("c", 33004, 53, b"q"), mangle=trunc_l4(6))
    sc.send("c", udp("c", 33004, 53, b"query", len=40))
    t.seg("c", "S")
    sc.send("c", udp("c", 33004, 53, b"query"))


@scenario
def truncated_headers_accept_policy(sc):
    """ACCEPT policy, INVALID not dropped, a `-p tcp --dport 22 -j DROP` rule: truncated TCP and UDP headers meet port matches."""
    sc.policy = "ACCEPT"
    sc.filter4 = ["-A FORWARD -p tcp -m tcp --dport 22 -j DROP",
                  "-A FORWARD -p udp -m udp --dport 22 -j DROP"]
    sc.filter6 = []
    t = Tcp(sc)
    t.seg("c", "S", advance=False, mangle=trunc_l4(12))
    t.seg("c", "S", advance=False, mangle=set_doff(15))
    sc.send("c", udp("c", 33005, 53, b"q"), mangle=trunc_l4(6))
    t.seg("c", "S")
    t.seg("s", "SA")


# --- loose, liberal ---------------------------------------------------------------------

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


# --- timeouts ---------------------------------------------------------------------------

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
def udp_timeout(sc):
    """udp_timeout = 2: request and reply, 3.5 s of silence, then the server's datagram is a NEW flow (dropped) and the client's again NEW."""
    sc.stateful(ALLOW_UDP)
    sc.sysctl["udp_timeout"] = 2
    sc.send("c", udp("c", 33010, 53, b"q1"))
    sc.send("s", udp("s", 53, 33010, b"a1"))
    sc.send("s", udp("s", 53, 33010, b"a2"), gap=3.5)
    sc.send("c", udp("c", 33010, 53, b"q2"))
    sc.send("s", udp("s", 53, 33010, b"a3"))


@scenario
def udp_unreplied(sc):
    """Datagrams one way only stay NEW; the server's first datagram of another flow is NEW too and dropped."""
    sc.stateful(ALLOW_UDP)
    for i in range(3):
        sc.send("c", udp("c", 33020, 53, b"q%d" % i))
    sc.send("s", udp("s", 53, 33021, b"unasked"))
    sc.send("c", udp("c", 33022, 54, b"other port"))


@scenario
def udp_replied(sc):
    """Request NEW, reply ESTABLISHED, then both directions ESTABLISHED."""
    sc.stateful(ALLOW_UDP)
    sc.send("c", udp("c", 33030, 53, b"q"))
    sc.send("s", udp("s", 53, 33030, b"a"))
    sc.send("c", udp("c", 33030, 53, b"q2"))
    sc.send("s", udp("s", 53, 33030, b"a2"))


@scenario
def udp_stream(sc):
    """udp_timeout = 2, udp_timeout_stream = 30: traffic both ways for more than 2 s makes a stream that survives 3 s of silence; a plain replied flow does not."""
    sc.stateful(ALLOW_UDP)
    sc.sysctl["udp_timeout"] = 2
    sc.sysctl["udp_timeout_stream"] = 30
    sc.send("c", udp("c", 33040, 53, b"s0"))
    sc.send("c", udp("c", 33041, 53, b"p0"))
    sc.send("s", udp("s", 53, 33040, b"s1"))
    sc.send("s", udp("s", 53, 33041, b"p1"))
    sc.send("c", udp("c", 33040, 53, b"s2"), gap=1.2)
    sc.send("s", udp("s", 53, 33040, b"s3"))
    sc.send("c", udp("c", 33040, 53, b"s4"), gap=1.2)
    sc.send("s", udp("s", 53, 33040, b"s5"))
    sc.send("s", udp("s", 53, 33040, b"s6"), gap=3.0)
    sc.send("s", udp("s", 53, 33041, b"p2"))


@scenario
def icmp_echo(sc):
    """Echo request NEW, reply ESTABLISHED, a second request/reply on the same id, a new id NEW."""
    sc.stateful(ALLOW_PING)
    sc.send("c", echo("c", 77, 1))
    sc.send("s", echo("s", 77, 1, reply=True))
    sc.send("c", echo("c", 77, 2))
    sc.send("s", echo("s", 77, 2, reply=True))
    sc.send("c", echo("c", 78, 1))
    sc.send("s", echo("s", 78, 1, reply=True))


@scenario
def icmp_unsolicited_reply(sc):
    """Echo replies with no request (INVALID); an echo request from the server side (NEW, not allowed)."""
    sc.stateful(ALLOW_PING)
    sc.send("s", echo("s", 90, 1, reply=True))
    sc.send("c", echo("c", 91, 1, reply=True))
    sc.send("s", echo("s", 92, 1))


@scenario
def icmp_timeout(sc):
    """icmp_timeout = 2: request, reply, 3.5 s later a reply is unsolicited (INVALID) and a request NEW."""
    sc.stateful(ALLOW_PING)
    sc.sysctl["icmp_timeout"] = 2
    sc.send("c", echo("c", 80, 1))
    sc.send("s", echo("s", 80, 1, reply=True))
    sc.send("s", echo("s", 80, 2, reply=True), gap=3.5)
    sc.send("c", echo("c", 80, 3))
    sc.send("s", echo("s", 80, 3, reply=True))


@scenario
def generic_protocol(sc):
    """IP protocol 253 (generic tracker, generic_timeout = 2): NEW, reply ESTABLISHED, after 3.5 s NEW again."""
    s = scapy()
    sc.stateful("-A FORWARD -s 10.10.0.2/32 -p 253 -m conntrack --ctstate NEW -j ACCEPT")
    sc.sysctl["generic_timeout"] = 2
    sc.send("c", s.IP(src=C4, dst=S4, proto=253) / s.Raw(b"generic-1"))
    sc.send("s", s.IP(src=S4, dst=C4, proto=253) / s.Raw(b"generic-2"))
    sc.send("c", s.IP(src=C4, dst=S4, proto=253) / s.Raw(b"generic-3"))
    sc.send("s", s.IP(src=S4, dst=C4, proto=253) / s.Raw(b"generic-4"), gap=3.5)
    sc.send("c", s.IP(src=C4, dst=S4, proto=253) / s.Raw(b"generic-5"))


# --- ICMP errors --------------------------------------------------------------------------

@scenario
def icmp_error_related_udp(sc):
    """A UDP datagram, then the server's port unreachable quoting it (RELATED); a second error after the reply."""
    sc.stateful(ALLOW_UDP)
    q = udp("c", 33050, 53, b"query")
    sc.send("c", q)
    sc.send("s", icmp_error(S4, C4, q, 3, 3))
    sc.send("s", udp("s", 53, 33050, b"late answer"))
    sc.send("s", icmp_error(S4, C4, q, 3, 3))


@scenario
def icmp_error_related_tcp(sc):
    """A SYN, then a router's time exceeded quoting it (RELATED); fragmentation needed quoting established data."""
    sc.stateful(ALLOW_HTTP)
    t = Tcp(sc)
    syn = t.seg("c", "S", advance=False)
    sc.send("s", icmp_error(R4, C4, syn, 11, 0))
    t.seg("c", "S")
    t.seg("s", "SA")
    t.seg("c", "A")
    d = t.seg("c", "PA", b"x" * 200)
    sc.send("s", icmp_error(R4, C4, d, 3, 4))


@scenario
def icmp_error_unrelated(sc):
    """ICMP errors quoting flows nobody opened (INVALID): port unreachable about UDP, time exceeded about TCP, and one quoting an echo request."""
    s = scapy()
    sc.stateful(ALLOW_UDP, "-A FORWARD -p icmp -j ACCEPT")
    sc.send("s", icmp_error(S4, C4, udp("c", 33060, 53, b"never sent"), 3, 3))
    sc.send("s", icmp_error(R4, C4, s.IP(src=C4, dst=S4, id=9) / s.TCP(sport=40500, dport=80,
                                                                          flags="S"), 11, 0))
    sc.send("c", icmp_error(C4, S4, s.IP(src=S4, dst=C4, id=10) / s.ICMP(type=8, id=5), 3, 1))


# --- IPv6 ---------------------------------------------------------------------------------

@scenario
def ipv6_tcp(sc):
    """IPv6: handshake, data both ways, FIN close; a SYN to a port the rules do not allow."""
    sc.stateful(allow6=(ALLOW_HTTP6,))
    t = Tcp(sc, v6=True)
    t.handshake()
    data_exchange(t)
    t.seg("c", "FA")
    t.seg("s", "FA")
    t.seg("c", "A")
    Tcp(sc, v6=True, cport=40001, sport=81).seg("c", "S")


@scenario
def ipv6_udp(sc):
    """IPv6 UDP request/reply, an unreplied flow, and an ICMPv6 port unreachable quoting it (RELATED)."""
    sc.stateful(allow6=("-A FORWARD -s fd00::2/128 -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT",))
    sc.send("c", udp("c", 33070, 53, b"q", v6=True))
    sc.send("s", udp("s", 53, 33070, b"a", v6=True))
    q = udp("c", 33071, 53, b"q2", v6=True)
    sc.send("c", q)
    sc.send("s", icmp_error(S6, C6, q, 1, 4, v6=True))
    sc.send("s", icmp_error(S6, C6, udp("c", 33072, 53, b"never", v6=True), 1, 4, v6=True))


@scenario
def icmpv6_echo(sc):
    """ICMPv6 echo request/reply, a second pair, an unsolicited reply (INVALID)."""
    sc.stateful(allow6=("-A FORWARD -s fd00::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT",))
    sc.send("c", echo("c", 60, 1, v6=True))
    sc.send("s", echo("s", 60, 1, reply=True, v6=True))
    sc.send("c", echo("c", 60, 2, v6=True))
    sc.send("s", echo("s", 60, 2, reply=True, v6=True))
    sc.send("s", echo("s", 61, 1, reply=True, v6=True))


@scenario
def ipv6_ndp(sc):
    """Neighbour solicitation and advertisement (UNTRACKED), accepted by ICMPv6 type rules; a router solicitation (UNTRACKED, dropped)."""
    s = scapy()
    sc.stateful(allow6=(
        "-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT",
        "-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT",
    ))
    sc.send("c", s.IPv6(src=C6, dst="ff02::1:ff00:3", hlim=255) / s.ICMPv6ND_NS(tgt=S6)
            / s.ICMPv6NDOptSrcLLAddr(lladdr=CMAC))
    sc.send("s", s.IPv6(src=S6, dst=C6, hlim=255) / s.ICMPv6ND_NA(tgt=S6, R=0, S=1, O=1)
            / s.ICMPv6NDOptDstLLAddr(lladdr=SMAC))
    sc.send("c", s.IPv6(src="fe80::12", dst="ff02::2", hlim=255) / s.ICMPv6ND_RS()
            / s.ICMPv6NDOptSrcLLAddr(lladdr=CMAC))


@scenario
def ipv6_untracked_ndp_accepted(sc):
    """Neighbour discovery accepted by an UNTRACKED rule, echo through the stateful rules."""
    s = scapy()
    sc.stateful(allow6=(
        "-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT",
        "-A FORWARD -s fd00::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT",
    ))
    sc.send("s", s.IPv6(src=S6, dst="ff02::1:ff00:2", hlim=255) / s.ICMPv6ND_NS(tgt=C6)
            / s.ICMPv6NDOptSrcLLAddr(lladdr=SMAC))
    sc.send("c", s.IPv6(src=C6, dst=S6, hlim=255) / s.ICMPv6ND_NA(tgt=C6, R=0, S=1, O=1)
            / s.ICMPv6NDOptDstLLAddr(lladdr=CMAC))
    sc.send("c", echo("c", 62, 1, v6=True))
    sc.send("s", echo("s", 62, 1, reply=True, v6=True))


@scenario
def ipv6_ext_headers(sc):
    """IPv6 extension headers: a TCP handshake through hop-by-hop and destination options, UDP after destination options, ICMPv6 echo after both."""
    s = scapy()
    sc.stateful(allow6=(
        ALLOW_HTTP6,
        "-A FORWARD -s fd00::2/128 -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT",
        "-A FORWARD -s fd00::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT",
    ))
    t = Tcp(sc, v6=True, ext={"c": s.IPv6ExtHdrHopByHop, "s": s.IPv6ExtHdrDestOpt})
    t.handshake()
    t.seg("c", "PA", b"through options\n")
    t.seg("s", "A")
    sc.send("c", s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrDestOpt() / s.UDP(sport=33080, dport=53)
            / s.Raw(b"q"))
    sc.send("s", s.IPv6(src=S6, dst=C6) / s.IPv6ExtHdrHopByHop() / s.IPv6ExtHdrDestOpt()
            / s.UDP(sport=53, dport=33080) / s.Raw(b"a"))
    sc.send("c", echo("c", 63, 1, v6=True, ext=s.IPv6ExtHdrHopByHop() / s.IPv6ExtHdrDestOpt()))
    sc.send("s", echo("s", 63, 1, reply=True, v6=True, ext=s.IPv6ExtHdrDestOpt()))


@scenario
def ipv6_bad_checksum(sc):
    """IPv6: a SYN with a bad TCP checksum and a UDP datagram with a bad checksum (INVALID), then the good SYN."""
    sc.stateful(allow6=(ALLOW_HTTP6,
                        "-A FORWARD -s fd00::2/128 -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT"))
    t = Tcp(sc, v6=True)
    t.seg("c", "S", advance=False, mangle=bad_l4_csum)
    sc.send("c", udp("c", 33090, 53, b"q", v6=True), mangle=bad_l4_csum)
    t.handshake()


# --- rules: notrack, multiport, negation, ctdir -------------------------------------------

@scenario
def notrack_raw(sc):
    """raw PREROUTING notrack (CT --notrack and NOTRACK) for UDP port 5000 both ways: UNTRACKED, accepted by an UNTRACKED rule; a tracked flow beside it."""
    sc.raw4 = ["-A PREROUTING -p udp -m udp --dport 5000 -j CT --notrack",
               "-A PREROUTING -p udp -m udp --sport 5000 -j NOTRACK"]
    sc.stateful("-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT", ALLOW_UDP)
    sc.send("c", udp("c", 33100, 5000, b"u1"))
    sc.send("s", udp("s", 5000, 33100, b"u2"))
    sc.send("s", udp("s", 5001, 33100, b"u3"))
    sc.send("c", udp("c", 33101, 53, b"t1"))
    sc.send("s", udp("s", 53, 33101, b"t2"))


@scenario
def notrack_then_state_rules(sc):
    """notrack for TCP port 80: a handshake whose packets are all UNTRACKED, against rules that accept only NEW and ESTABLISHED."""
    sc.raw4 = ["-A PREROUTING -p tcp -m tcp --dport 80 -j CT --notrack",
               "-A PREROUTING -p tcp -m tcp --sport 80 -j CT --notrack"]
    sc.stateful(ALLOW_HTTP, "-A FORWARD -s 10.10.0.2/32 -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT")
    Tcp(sc).handshake()
    Tcp(sc, sport=8080, cport=40600).handshake()


@scenario
def multiport(sc):
    """-m multiport --dports 22,80,8000:8010 for NEW: SYNs to 22, 23, 80, 7999, 8000, 8005, 8010, 8011; UDP --sports list."""
    sc.stateful(
        "-A FORWARD -s 10.10.0.2/32 -p tcp -m multiport --dports 22,80,8000:8010 -m conntrack --ctstate NEW -j ACCEPT",
        "-A FORWARD -p udp -m multiport --sports 1000:1010,2000 -j ACCEPT")
    for i, port in enumerate((22, 23, 80, 7999, 8000, 8005, 8010, 8011)):
        t = Tcp(sc, cport=41000 + i, sport=port)
        t.seg("c", "S")
        t.seg("s", "SA")
    for sp in (999, 1000, 1010, 1011, 2000):
        sc.send("s", udp("s", sp, 33110, b"m"))


@scenario
def negated_state(sc):
    """`-m state ! --state` and `-m conntrack ! --ctstate`: accept all but NEW and INVALID, plus client UDP that is not INVALID."""
    s = scapy()
    sc.filter4 = ["-A FORWARD -m conntrack ! --ctstate NEW,INVALID -j ACCEPT",
                  "-A FORWARD -s 10.10.0.2/32 -p udp -m state ! --state INVALID -j ACCEPT"]
    sc.filter6 = []
    sc.send("c", udp("c", 33120, 53, b"q"))
    sc.send("s", udp("s", 53, 33120, b"a"))
    sc.send("s", udp("s", 53, 33121, b"unasked"))
    sc.send("s", echo("s", 93, 1, reply=True))
    sc.send("c", echo("c", 94, 1))
    sc.send("c", udp("c", 33122, 53, b"bad"), mangle=bad_l4_csum)
    sc.send("c", s.IP(src=C4, dst=S4, proto=253) / s.Raw(b"generic"))


@scenario
def ctdir(sc):
    """--ctdir ORIGINAL accepts the client's datagrams, --ctdir REPLY only replies from port 53; a server-opened flow is ORIGINAL too."""
    sc.filter4 = ["-A FORWARD -s 10.10.0.2/32 -p udp -m conntrack --ctdir ORIGINAL -j ACCEPT",
                  "-A FORWARD -p udp -m udp --sport 53 -m conntrack --ctdir REPLY -j ACCEPT"]
    sc.filter6 = []
    sc.send("c", udp("c", 33130, 53, b"q"))
    sc.send("s", udp("s", 53, 33130, b"a"))
    sc.send("c", udp("c", 33131, 54, b"q"))
    sc.send("s", udp("s", 54, 33131, b"a"))
    sc.send("s", udp("s", 53, 33132, b"server first"))
    sc.send("c", udp("c", 33132, 53, b"client reply"))
    sc.send("s", echo("s", 95, 1, reply=True))


@scenario
def policy_accept_invalid_passes(sc):
    """ACCEPT policy without an INVALID rule: INVALID packets pass and do not change the connection (a later packet still judged on the old window)."""
    sc.policy = "ACCEPT"
    sc.filter4 = ["-A FORWARD -s 10.10.0.3/32 -p tcp -m conntrack --ctstate NEW -j DROP"]
    sc.filter6 = []
    t = Tcp(sc, swin=1000)
    t.handshake()
    base = t.nxt["c"]
    t.seg("c", "PA", b"x" * 10, seq=base + 50_000)
    t.seg("c", "SF", advance=False, opts=[])
    t.seg("c", "PA", b"y" * 10)
    t.seg("s", "A")
    Tcp(sc, cport=40700, sport=80).seg("s", "S")


# --- FTP ----------------------------------------------------------------------------------

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


# --- sharper TCP edges --------------------------------------------------------------------

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


# --- sharper ICMP edges --------------------------------------------------------------------

@scenario
def icmp_error_directions(sc):
    """ICMP errors about a tracked UDP flow: from the client about the server's reply, from a router to the wrong host, and an error quoting an ICMP echo."""
    sc.stateful(ALLOW_UDP, ALLOW_PING)
    q = udp("c", 33200, 53, b"q")
    sc.send("c", q)
    a = udp("s", 53, 33200, b"a")
    sc.send("s", a)
    sc.send("c", icmp_error(C4, S4, a, 3, 3))
    sc.send("c", icmp_error(R4, S4, q, 11, 0))
    e = echo("c", 500, 1)
    sc.send("c", e)
    sc.send("s", icmp_error(R4, C4, e, 11, 0))
    sc.send("s", icmp_error(R4, C4, icmp_error(S4, C4, q, 3, 3), 11, 0))


@scenario
def icmp_echo_mismatch(sc):
    """An echo reply with another id than the request (INVALID), a reply from a third address, then the right reply."""
    s = scapy()
    sc.stateful(ALLOW_PING)
    sc.send("c", echo("c", 300, 1))
    sc.send("s", echo("s", 301, 1, reply=True))
    sc.send("s", s.IP(src="10.10.0.4", dst=C4) / s.ICMP(type=0, id=300, seq=1) / s.Raw(b"ping"))
    sc.send("s", echo("s", 300, 1, reply=True))


@scenario
def icmpv6_error_related_tcp(sc):
    """IPv6: a packet too big and a time exceeded from a router about an established TCP flow (RELATED), one about nothing (INVALID)."""
    s = scapy()
    sc.stateful(allow6=(ALLOW_HTTP6,))
    t = Tcp(sc, v6=True)
    t.handshake()
    d = t.seg("c", "PA", b"x" * 300)
    sc.send("s", s.IPv6(src=R6, dst=C6) / s.ICMPv6PacketTooBig(mtu=1280) / s.Raw(bytes(d)[:1232]))
    sc.send("s", icmp_error(R6, C6, d, 3, 0, v6=True))
    other = Tcp(sc, v6=True, cport=40999).seg("c", "S", build_only=True)
    sc.send("s", icmp_error(R6, C6, other, 3, 0, v6=True))
    t.seg("s", "A")


@scenario
def udp_reply_other_port(sc):
    """UDP: a reply from another source port is a new flow; the same 5-tuple reversed is the reply."""
    sc.stateful(ALLOW_UDP)
    sc.send("c", udp("c", 33300, 53, b"q"))
    sc.send("s", udp("s", 5353, 33300, b"wrong port"))
    sc.send("s", udp("s", 53, 33300, b"right port"))
    sc.send("c", udp("c", 33300, 53, b"q2"))


@scenario
def truncated_icmp(sc):
    """ICMP cut to 2 bytes and an echo request cut to 6 bytes, against ACCEPT policy with an `--icmp-type` rule; then a whole echo request and reply."""
    sc.policy = "ACCEPT"
    sc.filter4 = ["-A FORWARD -p icmp -m icmp --icmp-type 13 -j DROP"]
    sc.filter6 = []
    sc.send("c", echo("c", 700, 1), mangle=trunc_l4(2))
    sc.send("c", echo("c", 700, 1), mangle=trunc_l4(6))
    sc.send("c", echo("c", 700, 2))
    sc.send("s", echo("s", 700, 2, reply=True))


@scenario
def ipv4_options(sc):
    """IPv4 headers with options (router alert, NOPs): the transport header starts after them; a handshake and a UDP exchange."""
    s = scapy()
    sc.stateful(ALLOW_HTTP, ALLOW_UDP)
    opts = [s.IPOption_Router_Alert(), s.IPOption_NOP(), s.IPOption_NOP(), s.IPOption_NOP(),
            s.IPOption_NOP()]
    t = Tcp(sc)
    for side, fl in (("c", "S"), ("s", "SA"), ("c", "A")):
        pkt = t.seg(side, fl, build_only=True)
        pkt[s.IP].options = opts
        sc.send(side, pkt)
        t.nxt[side] = u32(t.nxt[side] + (1 if "S" in fl else 0))
    sc.send("c", s.IP(src=C4, dst=S4, options=opts) / s.UDP(sport=33400, dport=53) / s.Raw(b"q"))
    sc.send("s", s.IP(src=S4, dst=C4, options=opts) / s.UDP(sport=53, dport=33400) / s.Raw(b"a"))


# --- sharper FTP edges ---------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------
# The kernel lab

CLONE_NEWNET = 0x40000000
STOP = threading.Event()  # set on SIGTERM/SIGINT: labs stop sending and clean up
_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(ns: str, fn):
    """Run fn() in network namespace ns (this thread only)."""
    cur = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    tgt = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(tgt, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            return fn()
        finally:
            if _libc.setns(cur, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(cur)
        os.close(tgt)


def sh(*args, check=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


NFLOG_STATES = ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED")


def lab_rules(text: str) -> dict[str, str]:
    """Split a scenario's rules.iptables into iptables-restore input per family, with the
    oracle's NFLOG rules inserted at the top of filter FORWARD."""
    parts = {"4": [], "6": []}
    fam = "4"
    for line in text.splitlines():
        low = line.lower()
        if line.startswith("#"):
            if "generated by ip6tables" in low:
                fam = "6"
            elif "generated by iptables" in low:
                fam = "4"
            continue
        parts[fam].append(line)
    out = {}
    for fam, lines in parts.items():
        res, in_filter, inserted = [], False, False
        for line in lines:
            if line.startswith("*"):
                in_filter, inserted = line == "*filter", False
            if in_filter and not inserted and (line.startswith("-A") or line == "COMMIT"):
                res += [f"-A FORWARD -m conntrack --ctstate {st} -j NFLOG --nflog-prefix "
                        f"{st.lower()} --nflog-group 1" for st in NFLOG_STATES]
                inserted = True
            res.append(line)
        if "*filter" not in lines:
            res += ["*filter", ":FORWARD ACCEPT [0:0]"]
            res += [f"-A FORWARD -m conntrack --ctstate {st} -j NFLOG --nflog-prefix "
                    f"{st.lower()} --nflog-group 1" for st in NFLOG_STATES]
            res.append("COMMIT")
        out[fam] = "\n".join(res) + "\n"
    return out


def read_sysctl(path: str) -> list[tuple[str, str]]:
    out = []
    if os.path.exists(path):
        for line in open(path):
            line = line.split("#")[0].strip()
            if "=" in line:
                k, v = line.split("=", 1)
                out.append((k.strip(), v.strip()))
    return out


class Lab:
    def __init__(self, slot: int, work: str):
        self.c, self.g, self.s = (f"swd{slot:02d}{x}" for x in "cgs")
        self.work = work
        self.procs = []

    def __enter__(self):
        self.down()
        for ns in (self.c, self.g, self.s):
            sh("ip", "netns", "add", ns)
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        g = self.g
        sh("ip", "-n", g, "link", "add", "lan", "address", "02:00:00:00:01:01", "type", "veth",
           "peer", "name", "eth0", "address", "02:00:00:00:00:02", "netns", self.c)
        sh("ip", "-n", g, "link", "add", "wan", "address", "02:00:00:00:01:02", "type", "veth",
           "peer", "name", "eth0", "address", "02:00:00:00:00:03", "netns", self.s)
        for ns, dev in ((self.c, "eth0"), (self.s, "eth0"), (g, "lan"), (g, "wan")):
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "rx", "off")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off",
               "gro", "off", check=False)
        sh("ip", "-n", g, "link", "add", "br0", "address", "02:00:00:00:01:00", "type", "bridge",
           "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
        for dev in ("lan", "wan"):
            sh("ip", "-n", g, "link", "set", dev, "master", "br0")
        for dev in ("lan", "wan", "br0"):
            sh("ip", "-n", g, "link", "set", dev, "up")
        for ns in (self.c, self.s):
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "netns", "exec", g, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1",
           "net.bridge.bridge-nf-call-ip6tables=1", "net.bridge.bridge-nf-call-arptables=0")
        return self

    def down(self):
        for ns in (self.c, self.g, self.s):
            sh("ip", "netns", "del", ns, check=False)

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.down()

    def load(self, scdir: str):
        rules = lab_rules(open(os.path.join(scdir, "rules.iptables")).read())
        for fam, tool in (("4", "iptables-legacy-restore"), ("6", "ip6tables-legacy-restore")):
            sh("ip", "netns", "exec", self.g, tool, input=rules[fam])
        for k, v in read_sysctl(os.path.join(scdir, "sysctl.conf")):
            sh("ip", "netns", "exec", self.g, "sysctl", "-qw", f"{k}={v}")

    def capture(self, name, *args):
        log = open(os.path.join(self.work, name + ".log"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.g, "tcpdump", "-n", "-U", "--immediate-mode", "-s", "0",
                              "-Z", "root", "-w", os.path.join(self.work, name + ".pcap"),
                              *args], stdout=log, stderr=log)
        self.procs.append(p)
        return p


def run_kernel(scdir: str, slot: int) -> tuple[list[dict], list[str]]:
    """Replay one scenario into a fresh lab; returns (answers, problems)."""
    packets = list(pcapng.read_packets(os.path.join(scdir, "packets.pcapng")))
    work = tempfile.mkdtemp(prefix="swdiff.")
    problems: list[str] = []
    try:
        with Lab(slot, work) as lab:
            lab.load(scdir)
            caps = {}
            for port in ("lan", "wan"):
                for q in ("in", "out"):
                    caps[f"{port}-{q}"] = lab.capture(f"{port}-{q}", "-i", port, "-Q", q,
                                                      "--time-stamp-precision=nano")
            caps["nflog"] = lab.capture("nflog", "-i", "nflog:1")
            deadline = time.monotonic() + 10
            for name in caps:
                while "listening on" not in open(os.path.join(work, name + ".log")).read():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"tcpdump {name} did not start")
                    time.sleep(0.05)
            time.sleep(0.2)

            def opener():
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                s.bind(("eth0", 0))
                return s
            socks = {"lan": in_netns(lab.c, opener), "wan": in_netns(lab.s, opener)}
            start = time.monotonic()
            t_first = packets[0].ts_ns if packets else 0
            last = 0.0
            for p in packets:
                if STOP.is_set():
                    raise RuntimeError("interrupted")
                due = start + (p.ts_ns - t_first) / 1e9
                due = max(due, last + 0.004)
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                socks[p.ifname].send(p.data)
                last = time.monotonic()
            for s in socks.values():
                s.close()
            # nfnetlink_log batches messages and flushes them after a second at most.
            time.sleep(1.3)
            for p in caps.values():
                p.send_signal(signal.SIGINT)
            for p in caps.values():
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
            # What arrived must be exactly what was sent.
            for port in ("lan", "wan"):
                got = [q.data for q in pcapng.read_packets(os.path.join(work, f"{port}-in.pcap"))]
                want = [q.data for q in packets if q.ifname == port]
                if got != want:
                    problems.append(f"{port}: {len(got)} frames arrived, {len(want)} sent"
                                    + ("" if len(got) != len(want) else " (bytes differ)"))
                    for q in got:
                        if q not in want:
                            problems.append(f"  unexpected: {pcapng.summarize(1, q)}")
            logged: dict = {}
            for q in pcapng.read_packets(os.path.join(work, "nflog.pcap")):
                k = pcapng.flow_key(q.linktype, q.data)
                logged.setdefault(k, []).append(pcapng.nflog_prefix(q.data))
            left = {}
            for port in ("lan", "wan"):
                left[port] = {}
                for q in pcapng.read_packets(os.path.join(work, f"{port}-out.pcap")):
                    k = pcapng.flow_key(q.linktype, q.data)
                    left[port][k] = left[port].get(k, 0) + 1
            other = {"lan": "wan", "wan": "lan"}
            rows = []
            for i, p in enumerate(packets):
                k = pcapng.flow_key(p.linktype, p.data)
                st = logged.pop(k, [None])
                if len(st) != 1:
                    problems.append(f"packet {i}: logged {len(st)} times")
                verdict = "accept" if left[other[p.ifname]].pop(k, 0) else "drop"
                if verdict == "accept" and st[0] is None and pcapng.ip_info(p.linktype, p.data):
                    problems.append(f"packet {i}: forwarded but not logged by FORWARD")
                rows.append({"index": i, "port": p.ifname, "ctstate": st[0], "verdict": verdict})
            for k, v in logged.items():
                problems.append(f"NFLOG entry matches no packet of the scenario: {k} {v}")
            return rows, problems
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cmd_kernel(args: list[str]) -> int:
    out, jobs, dirs = None, 8, []
    it = iter(args)
    for a in it:
        if a == "--out":
            out = next(it)
        elif a == "--jobs":
            jobs = int(next(it))
        else:
            dirs.append(a.rstrip("/"))
    if os.geteuid() != 0:
        print("scenarios.py kernel: needs root (network namespaces, iptables)", file=sys.stderr)
        return 2
    if not dirs:
        dirs = sorted(os.path.join(SCEN_DIR, d) for d in os.listdir(SCEN_DIR)
                      if os.path.isdir(os.path.join(SCEN_DIR, d)))
    if out:
        os.makedirs(out, exist_ok=True)
    # One kernel run at a time on this machine: the labs' namespace names are fixed.
    os.makedirs("/run/lock", exist_ok=True)
    lock = open("/run/lock/statewall-differential.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("scenarios.py kernel: waiting for another run to finish", file=sys.stderr)
        fcntl.flock(lock, fcntl.LOCK_EX)

    def stop(signum, _frame):
        STOP.set()
        print(f"scenarios.py kernel: signal {signum}, cleaning up", file=sys.stderr)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables") and shutil.which("modprobe"):
        sh("modprobe", "br_netfilter", check=False)
    fail = 0
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        slots = queue.Queue()
        for i in range(jobs):
            slots.put(i)

        def run_in_slot(d):
            slot = slots.get()
            try:
                return run_kernel(d, slot)
            finally:
                slots.put(slot)
        futs = {ex.submit(run_in_slot, d): d for d in dirs}
        for f in concurrent.futures.as_completed(futs):
            d = futs[f]
            if STOP.is_set():
                for g in futs:
                    g.cancel()
            name = os.path.basename(d)
            try:
                rows, problems = f.result()
            except Exception as e:  # noqa: BLE001 — report and go on with the others
                print(f"scenarios.py: {name}: lab failed: {e}", file=sys.stderr)
                fail = 1
                continue
            if problems:
                fail = 1
                print(f"scenarios.py: {name}: the lab run is not trustworthy:", file=sys.stderr)
                for line in problems:
                    print(f"    {line}", file=sys.stderr)
                continue
            dest = os.path.join(out, name + ".kernel.jsonl") if out else os.path.join(d, "kernel.jsonl")
            with open(dest + ".tmp", "w") as fh:
                for r in rows:
                    fh.write(json.dumps(r, separators=(",", ":")) + "\n")
            os.replace(dest + ".tmp", dest)
            print(f"scenarios.py: {name}: {len(rows)} packets -> {dest}", file=sys.stderr)
    print(f"scenarios.py: kernel lab: {len(dirs)} scenarios in {time.monotonic() - t0:.1f}s",
          file=sys.stderr)
    return 1 if STOP.is_set() else fail


def main(argv: list[str]) -> int:
    if argv and argv[0] == "generate":
        names = set(argv[1:])
        known = {name_of(f) for f in SCENARIOS}
        if names - known:
            print(f"unknown scenario(s): {', '.join(sorted(names - known))}", file=sys.stderr)
            return 2
        for fn in SCENARIOS:
            if not names or name_of(fn) in names:
                sc = make(fn)
                sc.write(SCEN_DIR)
                print(f"{sc.name}: {len(sc.frames)} packets", file=sys.stderr)
        return 0
    if argv and argv[0] == "kernel":
        return cmd_kernel(argv[1:])
    if argv and argv[0] == "list":
        for fn in SCENARIOS:
            print(f"{name_of(fn)}: {doc_of(fn)}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
