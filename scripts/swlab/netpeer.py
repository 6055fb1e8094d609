"""Small traffic peers for the lab tests (scripts/test-control.sh), with fixed source ports so
each flow's conntrack tuple is known in advance.

    swlab netpeer serve-tcp PORT          line echo server (threaded), until killed
    swlab netpeer serve-udp PORT          datagram echo server, until killed
    swlab netpeer tcp-keep HOST PORT SPORT LOG
                                          one TCP connection from SPORT; sends a line every
                                          0.1 s and appends a line to LOG per echo, until
                                          killed (LOG growing = the connection is alive)
    swlab netpeer udp-keep HOST PORT SPORT LOG
                                          the same over UDP
    swlab netpeer tcp-many HOST PORT FIRST N SECONDS [READY]
                                          N TCP connections from source ports FIRST..; each
                                          sends a line every 0.5 s for SECONDS and checks its
                                          echoes; touches READY once all are open; prints JSON:
                                          opened, resets (closed or reset by the network),
                                          echoes, max_wait_ms (the longest a line waited for its
                                          echo), stalled (connections with a line unanswered
                                          for 2 s or more)
    swlab netpeer udp-burst HOST PORT SPORT N [REPLIES]
                                          send N datagrams from SPORT (1 ms apart); with
                                          REPLIES=1 wait up to 2 s for the echoes and print
                                          how many came back, else print N
"""

from __future__ import annotations

import socket
import socketserver
import sys
import time


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


class TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve_tcp(port: int) -> None:
    TcpServer(("0.0.0.0", port), Echo).serve_forever()


def serve_udp(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def keep(kind: str, host: str, port: int, sport: int, log: str) -> None:
    typ = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(family_of(host), typ)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", sport))
    s.settimeout(5)
    s.connect((host, port))
    s.settimeout(0.1)
    n = 0
    with open(log, "a", buffering=1, encoding="utf-8") as out:
        buf = b""
        while True:
            n += 1
            try:
                s.send(b"ping %d\n" % n)
            except (TimeoutError, BlockingIOError, ConnectionRefusedError):
                pass
            deadline = time.monotonic() + 0.1
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data = s.recv(65535)
                except (TimeoutError, BlockingIOError, ConnectionRefusedError):
                    break
                if not data:  # TCP closed by the peer
                    out.write(f"{time.time():.3f} closed\n")
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    out.write(f"{time.time():.3f} {line.decode(errors='replace')}\n")


def tcp_many(host: str, port: int, first: int, n: int, seconds: float, ready: str) -> None:
    import json
    import selectors

    sel = selectors.DefaultSelector()
    conns = []
    for i in range(n):
        s = socket.socket(family_of(host), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", first + i))
        s.settimeout(5)
        s.connect((host, port))
        s.setblocking(False)
        c = {"sock": s, "buf": b"", "sent_at": None, "alive": True, "stalled": False}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    if ready:
        open(ready, "w").close()
    resets = echoes = 0
    max_wait = 0.0
    end = time.monotonic() + seconds
    next_round = time.monotonic()
    k = 0
    while (now := time.monotonic()) < end:
        if now >= next_round:
            # One round: each live connection with nothing outstanding sends a line.
            for c in conns:
                if c["alive"] and c["sent_at"] is None:
                    try:
                        c["sock"].send(b"line %d\n" % k)
                        c["sent_at"] = now
                    except OSError:
                        c["alive"] = False
                        resets += 1
                elif c["alive"] and now - c["sent_at"] >= 2:
                    c["stalled"] = True
            k += 1
            next_round = now + 0.5
        for key, _ in sel.select(timeout=max(0.0, min(next_round, end) - time.monotonic())):
            c = key.data
            try:
                data = c["sock"].recv(65535)
            except OSError:
                data = b""
            if not data:
                sel.unregister(c["sock"])
                c["alive"] = False
                resets += 1
                continue
            c["buf"] += data
            while b"\n" in c["buf"]:
                _, c["buf"] = c["buf"].split(b"\n", 1)
                if c["sent_at"] is not None:
                    max_wait = max(max_wait, time.monotonic() - c["sent_at"])
                    c["sent_at"] = None
                    echoes += 1
    for c in conns:
        if c["alive"] and c["sent_at"] is not None and time.monotonic() - c["sent_at"] >= 2:
            c["stalled"] = True
        c["sock"].close()
    print(json.dumps({"opened": n, "resets": resets, "echoes": echoes,
                      "max_wait_ms": round(max_wait * 1000, 1),
                      "stalled": sum(c["stalled"] for c in conns)}))


def udp_burst(host: str, port: int, sport: int, n: int, replies: bool) -> None:
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", sport))
    for i in range(n):
        s.sendto(b"burst %d" % i, (host, port))
        time.sleep(0.001)
    if not replies:
        print(n)
        return
    got = 0
    deadline = time.monotonic() + 2
    while got < n and (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            s.recvfrom(65535)
            got += 1
        except TimeoutError:
            break
    print(got)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        return run(argv[0], argv[1:])
    except KeyboardInterrupt:
        return 130


def run(cmd: str, a: list[str]) -> int:
    if cmd == "serve-tcp":
        serve_tcp(int(a[0]))
    elif cmd == "serve-udp":
        serve_udp(int(a[0]))
    elif cmd in ("tcp-keep", "udp-keep"):
        keep(cmd[:3], a[0], int(a[1]), int(a[2]), a[3])
    elif cmd == "tcp-many":
        tcp_many(a[0], int(a[1]), int(a[2]), int(a[3]), float(a[4]), a[5] if len(a) > 5 else "")
    elif cmd == "udp-burst":
        udp_burst(a[0], int(a[1]), int(a[2]), int(a[3]), len(a) > 4 and a[4] == "1")
    else:
        print(f"swlab netpeer: unknown command {cmd}", file=sys.stderr)
        return 2
    return 0

