"""Playing systemd for scripts/test-systemd.sh.

    swlab sd-listen SOCKET        bind a unix datagram socket at SOCKET (as systemd's
                                  NOTIFY_SOCKET) and print each notification as a JSON line,
                                  {"t": monotonic seconds, "pid": the sender's pid (from its
                                  credentials, which systemd's NotifyAccess= checks), "msg":
                                  {"KEY": "VALUE", ...}}, until killed
    swlab stall-thread PID NAME SECONDS
                                  stop the one thread of PID named NAME (/proc/PID/task/*/comm)
                                  for SECONDS, leaving the others running, then let it go on:
                                  ptrace(PTRACE_SEIZE) and PTRACE_INTERRUPT stop that thread
                                  alone (SIGSTOP or gdb would stop them all). Prints "stalled
                                  TID", then "released TID". Should this process die first,
                                  the kernel detaches and the thread goes on. Needs root.
    swlab sd-check-strace UNIT STRACE
                                  whether what an `strace -f` of the daemon (file STRACE) shows
                                  it doing is allowed by the unit file UNIT: every system call
                                  by SystemCallFilter= (groups expanded by `systemd-analyze
                                  syscall-filter`), every socket family by
                                  RestrictAddressFamilies=, no W+X or PROT_EXEC change for
                                  MemoryDenyWriteExecute=. Prints the calls it saw and each
                                  violation; exit 1 on one.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # __WALL: wait for a thread that is not a child


def listen(path: str) -> int:
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    s.bind(path)
    ucred = struct.calcsize("iII")
    while True:
        data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(ucred))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:ucred])[0]
        msg = {}
        for line in data.decode(errors="replace").split("\n"):
            if "=" in line:
                k, _, v = line.partition("=")
                msg[k] = v
        print(json.dumps({"t": round(time.monotonic(), 3), "pid": pid, "msg": msg}),
              flush=True)


def thread_of(pid: int, name: str) -> int:
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    return int(tid)
        except FileNotFoundError:
            continue
    raise SystemExit(f"swlab stall-thread: process {pid} has no thread named {name!r}")


def stall(pid: int, name: str, seconds: float) -> int:
    tid = thread_of(pid, name)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long

    def ptrace(req: int, what: str) -> None:
        if libc.ptrace(req, tid, None, None) != 0:
            e = ctypes.get_errno()
            raise SystemExit(f"swlab stall-thread: {what} {tid}: {os.strerror(e)}")

    ptrace(PTRACE_SEIZE, "PTRACE_SEIZE")
    ptrace(PTRACE_INTERRUPT, "PTRACE_INTERRUPT")
    os.waitpid(tid, WALL)
    print(f"stalled {tid}", flush=True)
    time.sleep(seconds)
    ptrace(PTRACE_DETACH, "PTRACE_DETACH")
    print(f"released {tid}", flush=True)
    return 0


def main_listen(args: list[str]) -> int:
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    return listen(args[0])


def main_stall(args: list[str]) -> int:
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    return stall(int(args[0]), args[1], float(args[2]))


def syscall_groups() -> dict[str, list[str]]:
    out = subprocess.run(["systemd-analyze", "syscall-filter"], check=True,
                         capture_output=True, text=True).stdout
    groups: dict[str, list[str]] = {}
    cur = None
    for line in out.splitlines():
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if not line[0].isspace() and item.startswith("@"):
            cur = groups.setdefault(item, [])
        elif cur is not None:
            cur.append(item)
    return groups


def expand(names: list[str], groups: dict[str, list[str]], seen=None) -> set[str]:
    seen = set() if seen is None else seen
    calls: set[str] = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            if n not in groups:
                raise SystemExit(f"swlab sd-check-strace: unknown syscall group {n}")
            seen.add(n)
            calls |= expand(groups[n], groups, seen)
        else:
            calls.add(n)
    return calls


def unit_settings(path: str, key: str) -> list[str]:
    """The values of every `KEY=` line of the unit, in order."""
    vals = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(key + "="):
                vals.append(line[len(key) + 1:])
    return vals


CALL = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)")
FAMILY = re.compile(r"^\d+\s+(?:socket|socketpair)\((AF_[A-Z0-9]+)")


def check_strace(unit: str, trace: str) -> int:
    groups = syscall_groups()
    allowed: set[str] = set()
    denied: set[str] = set()
    allow_list = None
    for v in unit_settings(unit, "SystemCallFilter"):
        if not v:
            allowed, denied, allow_list = set(), set(), None
            continue
        deny = v.startswith("~")
        names = expand(v.lstrip("~").split(), groups)
        if allow_list is None:
            allow_list = not deny
        if deny:
            denied |= names
            allowed -= names
        else:
            allowed |= names
            denied -= names
    families = set(" ".join(unit_settings(unit, "RestrictAddressFamilies")).split())
    mdwe = unit_settings(unit, "MemoryDenyWriteExecute")[-1:] == ["yes"]
    calls: set[str] = set()
    used_families: set[str] = set()
    bad = []
    with open(trace) as f:
        for line in f:
            m = CALL.match(line)
            if not m:
                continue
            calls.add(m.group(1))
            fm = FAMILY.match(line)
            if fm:
                used_families.add(fm.group(1))
            if mdwe and m.group(1) in ("mmap", "mprotect", "pkey_mprotect"):
                exe = "PROT_EXEC" in line
                if exe and ("PROT_WRITE" in line or m.group(1) != "mmap"):
                    bad.append(f"MemoryDenyWriteExecute= refuses: {line.strip()}")
    for c in sorted(calls):
        if allow_list is True and c not in allowed:
            bad.append(f"SystemCallFilter= does not allow {c}")
        if allow_list is False and c in denied:
            bad.append(f"SystemCallFilter= denies {c}")
    if families:
        for fam in sorted(used_families - families):
            bad.append(f"RestrictAddressFamilies= does not allow {fam}")
    print(f"{len(calls)} system calls: {' '.join(sorted(calls))}")
    print(f"socket families: {' '.join(sorted(used_families))}")
    for b in bad:
        print(b)
    return 1 if bad else 0


def main_check_strace(args: list[str]) -> int:
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    return check_strace(args[0], args[1])
