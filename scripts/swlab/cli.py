"""Dispatch `swlab COMMAND ARGS...` to the module that does it."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap

# command: (module, function, one line of help). Modules are imported only when used, so
# `swlab nfct` does not load the scenarios and nothing but `generate` loads scapy.
COMMANDS = {
    "generate": ("scenarios", "cmd_generate",
                 "[--out DIR] [NAME ...]  write tests/scenarios/NAME/ (the fragment scenarios: "
                 "tests/scenarios-fragments/NAME/; all without NAME; all in DIR with --out): "
                 "packets.pcapng, rules.iptables (or rules.nft and, as root, rules.json), "
                 "sysctl.conf, helpers (not kernel.jsonl)"),
    "list": ("scenarios", "cmd_list", "  the scenarios, one `NAME: description` line each"),
    "random": ("random_scenarios", "main",
               "[--first N] [--count N] [--out DIR]  write the seeded random scenarios "
               "rand-N... (default 200 from seed 1) to tests/scenarios-random/ (or DIR): "
               "packets.pcapng, rules.iptables, sysctl.conf (not kernel.jsonl)"),
    "kernel": ("kernel_lab", "main",
               "[DIR ...] [--out OUTDIR] [--jobs N] [--trace TDIR]  root: the kernel's answers "
               "for scenario captures (DIR/kernel.jsonl, or OUTDIR/NAME.kernel.jsonl; all of "
               "tests/scenarios/ and tests/scenarios-fragments/ without DIR); --trace writes "
               "what entered, was logged and left, frame by frame, to TDIR/NAME.trace"),
    "classes-table": ("classes_table", "main",
                      "DIR REPLAY.jsonl  the table of docs/malformed-classes.md: each class of "
                      "tests/scenarios/malformed-classes with the kernel's answer and statewall's"),
    "pcapng": ("pcapng", "main",
               "merge OUT.pcapng NAME=IN.pcap ... | list FILE [--json]  merge or list captures"),
    "kernel-oracle": ("kernel_oracle", "main",
                      "--capture F --nflog F --egress PORT=F ...  per-packet kernel answers "
                      "from capture-lab.sh's recordings"),
    "verdicts": ("verdicts", "main",
                 "compare KERNEL.jsonl REPLAY.jsonl [--capture F] [--all] | table REPLAY.jsonl "
                 "--capture F  statewall replay output as tables"),
    "nfct": ("nfct", "main", "[FILE]  nf_conntrack lines (stdin without FILE) as JSON lines"),
    "netpeer": ("netpeer", "main",
                "serve-tcp|serve-udp|tcp-keep|udp-keep|udp-burst ...  lab traffic peers"),
    "e2e-report": ("e2e_report", "main", "DIR  the Markdown report of scripts/bench-e2e.sh"),
    "sd-listen": ("systemd", "main_listen",
                  "SOCKET  play systemd's NOTIFY_SOCKET: each notification as a JSON line"),
    "stall-thread": ("systemd", "main_stall",
                     "PID NAME SECONDS  root: stop one thread of PID (ptrace) for SECONDS"),
    "sd-check-strace": ("systemd", "main_check_strace",
                        "UNIT STRACE  the daemon's system calls and sockets (strace -f) against "
                        "the unit's SystemCallFilter=, RestrictAddressFamilies=, "
                        "MemoryDenyWriteExecute="),
}


def usage(out=sys.stdout) -> None:
    print("usage: /usr/bin/python3 scripts/swlab COMMAND [ARGS...]\n\ncommands:", file=out)
    for name, (_, _, text) in COMMANDS.items():
        args, _, what = text.partition("  ")
        print(f"  {name} {args}".rstrip(), file=out)
        print(textwrap.fill(what, 92, initial_indent=" " * 6, subsequent_indent=" " * 6),
              file=out)
    print("\n`scripts/swlab COMMAND --help` prints the command module's docstring "
          "(scripts/swlab/*.py).", file=out)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("help", "-h", "--help"):
        usage(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    cmd, args = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"swlab: unknown command {cmd!r}", file=sys.stderr)
        usage(sys.stderr)
        return 2
    module, func, _ = COMMANDS[cmd]
    mod = importlib.import_module(f"{__package__}.{module}")
    if args and args[0] in ("-h", "--help") and cmd != "kernel-oracle":
        print(mod.__doc__)
        return 0
    return getattr(mod, func)(args) or 0


def run(argv: list[str]) -> int:
    """main() for the process: a closed pipe (`| head`) or Ctrl-C ends it quietly."""
    try:
        return main(argv)
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
