"""Small pure-Python pcap/pcapng reader and pcapng writer for the Statewall lab scripts.

No scapy, no tshark: the lab's captures are merged, listed and summarised with this module
so that the bundled test data can be rebuilt and read on a bare machine.

Commands (`scripts/swlab pcapng ...`):
  merge OUT.pcapng NAME=IN.pcap [NAME=IN.pcap ...]
      Merge classic pcap files (one per gateway port) by timestamp into one pcapng whose
      interfaces are named NAME (Interface Description Block option if_name), in the order
      given. Timestamps are written with microsecond resolution (the pcapng default); the
      merge sorts on the inputs' full resolution first, so packets that land in the same
      microsecond keep their true order in the file.
  list FILE [--json]
      One line per packet: index, interface name, timestamp, summary
      ("10.10.0.2:43210 > 10.10.0.3:80 TCP [S]"). --json prints objects instead.

As a module: read_packets(path) yields Packet(ts_ns, ifname, linktype, data) for pcap and
pcapng files alike; write_pcapng(); summarize(linktype, data); flow_key(linktype, data).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import struct
import sys
from collections.abc import Iterator
from typing import NamedTuple

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_NFLOG = 239

# Block types, pcapng spec (draft-ietf-opsawg-pcapng) §4.
BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_SPB = 0x00000003
BT_EPB = 0x00000006
BOM = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_IF_NAME = 2
OPT_IF_TSRESOL = 9
OPT_SHB_USERAPPL = 4
# The writer named in every capture this module writes (shb_userappl): this module's path
# before it moved into scripts/swlab. The committed captures carry it; changing it changes
# every one of them.
WRITER = b"statewall scripts/pcapng.py"


class Packet(NamedTuple):
    ts_ns: int
    ifname: str | None
    linktype: int
    data: bytes


# ---------------------------------------------------------------------------------------
# Reading


def read_packets(path: str) -> Iterator[Packet]:
    """Packets of a classic pcap or a pcapng file, in file order."""
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if len(head) < 4:
            return
        if struct.unpack("<I", head)[0] == BT_SHB:
            yield from _read_pcapng(f)
        else:
            yield from _read_pcap(f)


def _read_pcap(f) -> Iterator[Packet]:
    hdr = f.read(24)
    magic = hdr[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError(f"{f.name}: not a pcap or pcapng file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", hdr[20:24])[0] & 0x0FFFFFFF
    while True:
        rec = f.read(16)
        if len(rec) < 16:
            return
        sec, frac, incl, _orig = struct.unpack(e + "IIII", rec)
        data = f.read(incl)
        ts = sec * 1_000_000_000 + (frac if nano else frac * 1000)
        yield Packet(ts, None, linktype, data)


def _options(buf: bytes, e: str) -> Iterator[tuple[int, bytes]]:
    off = 0
    while off + 4 <= len(buf):
        code, length = struct.unpack_from(e + "HH", buf, off)
        off += 4
        if code == OPT_ENDOFOPT:
            return
        yield code, buf[off : off + length]
        off += (length + 3) & ~3


def _tsresol_ns(v: int) -> tuple[int, int]:
    """(multiplier, divisor) turning a timestamp in this resolution into nanoseconds."""
    if v & 0x80:
        per_sec = 1 << (v & 0x7F)
    else:
        per_sec = 10 ** (v & 0x7F)
    if per_sec <= 1_000_000_000:
        return 1_000_000_000 // per_sec, 1
    return 1, per_sec // 1_000_000_000


def _read_pcapng(f) -> Iterator[Packet]:
    e = "<"
    ifaces: list[tuple[str | None, int, tuple[int, int]]] = []
    while True:
        head = f.read(8)
        if len(head) < 8:
            return
        btype = struct.unpack("<I", head[:4])[0]
        if btype == BT_SHB:
            bom = f.read(4)
            e = "<" if struct.unpack("<I", bom)[0] == BOM else ">"
            total = struct.unpack(e + "I", head[4:8])[0]
            f.read(total - 12)
            ifaces = []  # interface ids are per section
            continue
        btype, total = struct.unpack(e + "II", head)
        body = f.read(total - 8)
        body = body[:-4]  # trailing total length
        if btype == BT_IDB:
            linktype = struct.unpack_from(e + "H", body, 0)[0]
            name, res = None, (1000, 1)
            for code, val in _options(body[8:], e):
                if code == OPT_IF_NAME:
                    name = val.rstrip(b"\0").decode("utf-8", "replace")
                elif code == OPT_IF_TSRESOL and val:
                    res = _tsresol_ns(val[0])
            ifaces.append((name, linktype, res))
        elif btype == BT_EPB:
            ifid, hi, lo, caplen, _orig = struct.unpack_from(e + "IIIII", body, 0)
            name, linktype, (mul, div) = ifaces[ifid]
            ts = (((hi << 32) | lo) * mul) // div
            yield Packet(ts, name, linktype, body[20 : 20 + caplen])
        elif btype == BT_SPB:
            name, linktype, _ = ifaces[0]
            _orig = struct.unpack_from(e + "I", body, 0)[0]
            yield Packet(0, name, linktype, body[4:])


# ---------------------------------------------------------------------------------------
# Writing


def _opt(code: int, val: bytes) -> bytes:
    pad = (-len(val)) % 4
    return struct.pack("<HH", code, len(val)) + val + b"\0" * pad


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def write_pcapng(path: str, interfaces: list[tuple[str, int]], packets) -> int:
    """Write interfaces [(name, linktype)] and packets [(ts_ns, ifindex, data)] in the order
    given; timestamps are stored in microseconds. Returns the packet count."""
    n = 0
    with open(path, "wb") as f:
        shb = struct.pack("<IHHq", BOM, 1, 0, -1)
        shb += _opt(OPT_SHB_USERAPPL, WRITER) + _opt(OPT_ENDOFOPT, b"")
        f.write(_block(BT_SHB, shb))
        for name, linktype in interfaces:
            idb = struct.pack("<HHI", linktype, 0, 0)  # snaplen 0: no limit
            idb += _opt(OPT_IF_NAME, name.encode()) + _opt(OPT_IF_TSRESOL, bytes([6]))
            idb += _opt(OPT_ENDOFOPT, b"")
            f.write(_block(BT_IDB, idb))
        for ts_ns, ifidx, data in packets:
            us = ts_ns // 1000
            pad = (-len(data)) % 4
            epb = struct.pack("<IIIII", ifidx, us >> 32, us & 0xFFFFFFFF, len(data), len(data))
            f.write(_block(BT_EPB, epb + data + b"\0" * pad))
            n += 1
    return n


def merge(out: str, named_inputs: list[tuple[str, str]]) -> int:
    interfaces = []
    rows = []
    for ifidx, (name, path) in enumerate(named_inputs):
        linktype = None
        for seq, p in enumerate(read_packets(path)):
            linktype = p.linktype if linktype is None else linktype
            if p.linktype != linktype:
                raise ValueError(f"{path}: mixed link types")
            rows.append((p.ts_ns, ifidx, seq, p.data))
        interfaces.append((name, LINKTYPE_ETHERNET if linktype is None else linktype))
    # Stable on (timestamp, input order, position in its file).
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return write_pcapng(out, interfaces, ((ts, i, d) for ts, i, _, d in rows))


# ---------------------------------------------------------------------------------------
# Dissection


class L3(NamedTuple):
    """Where the IP datagram of a frame starts, and its family (4 or 6); None when not IP."""

    family: int
    offset: int


def l3_of(linktype: int, data: bytes) -> L3 | None:
    if linktype == LINKTYPE_RAW:
        v = data[0] >> 4 if data else 0
        return L3(v, 0) if v in (4, 6) else None
    if linktype == LINKTYPE_NFLOG:
        off = nflog_tlvs(data).get(9)
        if off is None:
            return None
        v = data[off[0]] >> 4
        return L3(v, off[0]) if v in (4, 6) else None
    if linktype != LINKTYPE_ETHERNET or len(data) < 14:
        return None
    etype, off = struct.unpack_from("!H", data, 12)[0], 14
    while etype in (0x8100, 0x88A8) and len(data) >= off + 4:
        etype, off = struct.unpack_from("!H", data, off + 2)[0], off + 4
    if etype == 0x0800:
        return L3(4, off)
    if etype == 0x86DD:
        return L3(6, off)
    return None


def nflog_tlvs(data: bytes) -> dict[int, tuple[int, int]]:
    """NFLOG pseudo-header TLVs: type -> (value offset, value length). Lengths and types are
    in host byte order (little-endian here), per libpcap's DLT_NFLOG."""
    out = {}
    off = 4  # family, version, resource id
    while off + 4 <= len(data):
        length, typ = struct.unpack_from("<HH", data, off)
        if length < 4:
            break
        out[typ & 0x7FFF] = (off + 4, length - 4)
        off += (length + 3) & ~3
    return out


def nflog_ts_ns(data: bytes) -> int | None:
    """The packet's own timestamp in an NFLOG message (NFULA_TIMESTAMP: seconds and
    microseconds, big-endian; present when the skb carries one), in nanoseconds."""
    t = nflog_tlvs(data).get(3)
    if t is None or t[1] < 16:
        return None
    sec, usec = struct.unpack_from("!QQ", data, t[0])
    return sec * 1_000_000_000 + usec * 1000


def nflog_prefix(data: bytes) -> str | None:
    t = nflog_tlvs(data).get(10)
    if t is None:
        return None
    return data[t[0] : t[0] + t[1]].split(b"\0")[0].decode("ascii", "replace")


class FragInfo(NamedTuple):
    """The fragment fields of an IPv4 fragment (MF set or offset not 0) or of an IPv6 packet
    with a fragment header (atomic fragments included)."""

    ident: int  # IPv4 id / IPv6 fragment header identification
    offset: int  # in bytes
    mf: bool
    data: bytes  # what follows the IPv4 header / the IPv6 fragment header (to the IP length)


class IpInfo(NamedTuple):
    family: int
    src: str
    dst: str
    proto: int  # an IPv6 fragment's: the fragment header's next header
    ipid: int  # IPv4 id / IPv6 flow label
    length: int  # datagram length from the IP header
    l4: bytes  # transport header and payload (truncated to the IP length); b"" in a fragment
    #            whose offset is not 0
    frag: FragInfo | None = None


def ip_info(linktype: int, data: bytes) -> IpInfo | None:
    l3 = l3_of(linktype, data)
    if l3 is None:
        return None
    ip = data[l3.offset :]
    if l3.family == 4 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        ipid = struct.unpack_from("!H", ip, 4)[0]
        proto = ip[9]
        src = str(ipaddress.IPv4Address(ip[12:16]))
        dst = str(ipaddress.IPv4Address(ip[16:20]))
        fword = struct.unpack_from("!H", ip, 6)[0]
        frag = fword & 0x1FFF
        l4 = ip[ihl:total] if frag == 0 else b""
        fi = None
        if fword & 0x3FFF:  # MF or an offset: a fragment
            fi = FragInfo(ipid, frag * 8, bool(fword & 0x2000), ip[ihl:total])
        return IpInfo(4, src, dst, proto, ipid, total, l4, fi)
    if l3.family == 6 and len(ip) >= 40:
        plen = struct.unpack_from("!H", ip, 4)[0]
        nxt = ip[6]
        src = str(ipaddress.IPv6Address(ip[8:24]))
        dst = str(ipaddress.IPv6Address(ip[24:40]))
        off = 40
        # Walk hop-by-hop, routing and destination options headers to the transport header.
        while nxt in (0, 43, 60) and len(ip) >= off + 8:
            nxt, off = ip[off], off + (ip[off + 1] + 1) * 8
        flow = struct.unpack_from("!I", ip, 0)[0] & 0xFFFFF
        if nxt == 44 and len(ip) >= off + 8:
            fword, ident = struct.unpack_from("!HI", ip, off + 2)
            fi = FragInfo(ident, fword & 0xFFF8, bool(fword & 1), ip[off + 8 : 40 + plen])
            nxt, off = ip[off], off + 8
            if fi.offset:
                return IpInfo(6, src, dst, nxt, flow, plen + 40, b"", fi)
            while nxt in (0, 43, 60) and len(ip) >= off + 8:
                nxt, off = ip[off], off + (ip[off + 1] + 1) * 8
            return IpInfo(6, src, dst, nxt, flow, plen + 40, ip[off : 40 + plen], fi)
        return IpInfo(6, src, dst, nxt, flow, plen + 40, ip[off : 40 + plen])
    return None


# tcpdump's letters, in its order; ACK is printed last as ".".
TCP_FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x20, "U"),
                    (0x40, "E"), (0x80, "W"), (0x10, "."))


def tcp_flag_str(flags: int) -> str:
    """tcpdump's notation: S, S., ., P., F., R, R. ..."""
    return "".join(c for bit, c in TCP_FLAG_LETTERS if flags & bit) or "none"


def flow_key(linktype: int, data: bytes, frag_id: bool = True):
    """Identity of one packet as it crosses the bridge unchanged: addresses, protocol, IPv4 id,
    length, ports, TCP seq/ack/flags or ICMP type/id/seq, and a digest of the payload. Frames
    that are not IP are identified by all their bytes.

    A fragment (IPv4 MF or offset, or an IPv6 fragment header) is identified by addresses,
    protocol, IPv4 id / IPv6 flow label, its fragment identification (unless not frag_id: the
    kernel gives IPv6 fragments it re-fragments a fresh one), offset, MF, and a digest of the
    bytes after the IPv4 header / the IPv6 fragment header: a fragment that left with the same
    key carried the same bytes at the same place of the same datagram."""
    info = ip_info(linktype, data)
    if info is None:
        if linktype == LINKTYPE_ETHERNET:
            return ("raw", hashlib.sha1(data).hexdigest())
        return None
    if info.frag is not None:
        f = info.frag
        return ("frag", info.family, info.src, info.dst, info.proto, info.ipid,
                f.ident if frag_id else None, f.offset, f.mf,
                hashlib.sha1(f.data).hexdigest()[:16])
    l4, extra = info.l4, ()
    if info.proto == 6 and len(l4) >= 20:
        sport, dport, seq, ack, _off, flags = struct.unpack_from("!HHIIBB", l4, 0)
        extra = ("tcp", sport, dport, seq, ack, flags)
    elif info.proto == 17 and len(l4) >= 8:
        extra = ("udp",) + struct.unpack_from("!HH", l4, 0)
    elif info.proto in (1, 58) and len(l4) >= 8:
        extra = ("icmp",) + struct.unpack_from("!BBHH", l4, 0)
    digest = hashlib.sha1(l4).hexdigest()[:16]
    return ("ip", info.family, info.src, info.dst, info.proto, info.ipid, info.length,
            extra, digest)


ICMP4_TYPES = {0: "echo-reply", 3: "unreachable", 8: "echo-request", 11: "time-exceeded"}
ICMP6_TYPES = {1: "unreachable", 128: "echo-request", 129: "echo-reply", 133: "RS",
               134: "RA", 135: "NS", 136: "NA", 143: "MLDv2-report"}
PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6"}


def _hostport(family: int, addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if family == 6 else f"{addr}:{port}"


def summarize(linktype: int, data: bytes, short: bool = False) -> str:
    """One line, e.g. `10.10.0.2:43210 > 10.10.0.3:80 TCP [S] seq 1 ack 0 len 0`; `short`
    leaves out sequence numbers and empty lengths and writes the arrow as →
    (`10.10.0.2:43210 → 10.10.0.3:80 TCP [S]`). A fragment gets
    ` frag id ID off OFFSET len N` (and ` MF`) after the summary of what it carries."""
    info = ip_info(linktype, data)
    line = _summarize(linktype, data, info, short)
    if info is not None and info.frag is not None:
        f = info.frag
        line += (f" frag id {f.ident:#x} off {f.offset} len {len(f.data)}"
                 + (" MF" if f.mf else ""))
    return line


def _summarize(linktype: int, data: bytes, info: IpInfo | None, short: bool) -> str:
    arrow = "→" if short else ">"
    if info is None:
        if linktype == LINKTYPE_ETHERNET and len(data) >= 42:
            etype = struct.unpack_from("!H", data, 12)[0]
            if etype == 0x0806:
                op = struct.unpack_from("!H", data, 20)[0]
                sha = ":".join(f"{b:02x}" for b in data[22:28])
                spa = ipaddress.IPv4Address(data[28:32])
                tpa = ipaddress.IPv4Address(data[38:42])
                if op == 1:
                    return f"ARP who-has {tpa} tell {spa}"
                if op == 2:
                    return f"ARP {spa} is-at {sha}"
                return f"ARP op {op}"
        if linktype == LINKTYPE_ETHERNET and len(data) >= 14:
            return f"ethertype 0x{struct.unpack_from('!H', data, 12)[0]:04x} len {len(data)}"
        return f"linktype {linktype} len {len(data)}"
    l4 = info.l4
    name = PROTO_NAMES.get(info.proto, f"proto {info.proto}")
    if info.proto == 6 and len(l4) >= 20:
        sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", l4, 0)
        plen = len(l4) - (off >> 4) * 4
        head = (f"{_hostport(info.family, info.src, sport)} {arrow} "
                f"{_hostport(info.family, info.dst, dport)} TCP [{tcp_flag_str(flags)}]")
        if short:
            return head + (f" len {plen}" if plen else "")
        return f"{head} seq {seq} ack {ack} len {plen}"
    if info.proto == 17 and len(l4) >= 8:
        sport, dport, ulen = struct.unpack_from("!HHH", l4, 0)
        return (f"{_hostport(info.family, info.src, sport)} {arrow} "
                f"{_hostport(info.family, info.dst, dport)} UDP len {ulen - 8}")
    if info.proto in (1, 58) and len(l4) >= 4:
        ty, code = l4[0], l4[1]
        names = ICMP4_TYPES if info.proto == 1 else ICMP6_TYPES
        what = names.get(ty, f"type {ty}/{code}")
        if ty in (0, 8, 128, 129) and len(l4) >= 8:
            ident, seq = struct.unpack_from("!HH", l4, 4)
            what += f" id {ident} seq {seq}"
        return f"{info.src} {arrow} {info.dst} {name} {what}"
    return f"{info.src} {arrow} {info.dst} {name} len {info.length}"


# ---------------------------------------------------------------------------------------
# Command line


def main(argv: list[str]) -> int:
    # A terminal or log that is not UTF-8 gets escapes instead of a crash on "→".
    sys.stdout.reconfigure(errors="backslashreplace")
    if len(argv) >= 3 and argv[0] == "merge":
        pairs = []
        for a in argv[2:]:
            name, sep, path = a.partition("=")
            if not sep or not name:
                print(f"swlab pcapng merge: expected NAME=FILE, got `{a}`", file=sys.stderr)
                return 2
            pairs.append((name, path))
        n = merge(argv[1], pairs)
        print(f"swlab pcapng: wrote {n} packets to {argv[1]}", file=sys.stderr)
        return 0
    if len(argv) >= 2 and argv[0] == "list":
        as_json = "--json" in argv[2:]
        for i, p in enumerate(read_packets(argv[1])):
            s = summarize(p.linktype, p.data)
            if as_json:
                print(json.dumps({"index": i, "port": p.ifname, "ts_ns": p.ts_ns,
                                  "summary": s}))
            else:
                t = f"{p.ts_ns // 1_000_000_000}.{p.ts_ns % 1_000_000_000:09d}"
                print(f"{i:4d} {p.ifname or '-':4s} {t} {s}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2

