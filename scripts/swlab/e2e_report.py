"""The report of scripts/bench-e2e.sh: medians over runs, per gateway, traffic and flow count.

    /usr/bin/python3 scripts/swlab e2e-report DIR

DIR holds machine.txt and raw/GATEWAY-TRAFFIC-N-RUN.json (statewall-pktgen --json; N is the
flow count, or for TRAFFIC `rate` the packets per second, at 10k flows) with
raw/...cpu.json beside each (the gateway process's, core 1's and both cores' CPU time over
that run). "gateway ns/pkt" is the machine's ns per delivered frame minus the `direct`
baseline's (no gateway) for the same traffic and flow count.
Prints Markdown.
"""

import json
import re
import statistics
import sys
from pathlib import Path

NAME = re.compile(r"^(direct|statewall|kernel|testpmd)-(udp|tcp|rate)-(\d+)-(\d+)$")
GATEWAYS = ["direct", "statewall", "kernel", "testpmd"]


def load(raw):
    runs = {}
    for f in sorted(raw.glob("*.json")):
        if f.name.endswith(".cpu.json"):
            continue
        m = NAME.match(f.stem)
        if not m:
            continue
        gw, traffic, flows, _ = m.groups()
        cpu_file = f.with_name(f.stem + ".cpu.json")
        if not cpu_file.exists():
            continue
        gen = json.loads(f.read_text())
        cpu = json.loads(cpu_file.read_text())
        t = gen["totals"]
        # Every frame the far sides took in crossed the gateway: stamped data and, in the
        # stateful mode, the handshakes and resets.
        delivered = t["received"] + t["other_received"]
        lat = gen.get("latency") or {}
        runs.setdefault((gw, traffic, int(flows)), []).append(
            {
                "mpps": delivered / gen["seconds"] / 1e6,
                "sent_mpps": gen["sent_pps"] / 1e6,
                "loss": gen.get("loss_pct") or 0.0,
                "p50": lat.get("p50_us"),
                "p99": lat.get("p99_us"),
                "process_ns": (cpu["process_ns"] / delivered
                               if delivered and cpu["process_ns"] else None),
                "core_ns": cpu["core1_ns"] / delivered if delivered else None,
                "busy_pct": (100 * cpu["core1_ns"] / (gen["seconds"] * 1e9)
                             if gen["seconds"] else None),
                "machine_ns": cpu["machine_ns"] / delivered if delivered else None,
                "established": t.get("established", 0),
            }
        )
    return runs


def gateway_ns(runs, k):
    """Machine ns/pkt of gateway k minus the direct baseline's, for the same traffic."""
    if k[0] == "direct" or k not in runs:
        return None
    base = runs.get(("direct", k[1], k[2]))
    a = med(runs[k], "machine_ns")
    b = med(base, "machine_ns") if base else None
    return a - b if a is not None and b is not None else None


def core_or_machine(runs, k, key):
    if key == "machine":
        return gateway_ns(runs, k)
    return med(runs[k], key) if k in runs else None


def med(rows, key):
    vals = [r[key] for r in rows if r[key] is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = Path(argv[0])
    runs = load(out / "raw")
    machine = (out / "machine.txt").read_text() if (out / "machine.txt").exists() else ""
    print("## End-to-end: statewall vs the kernel vs dpdk-testpmd (net_af_xdp io-fwd)\n")
    for line in machine.strip().splitlines():
        print(f"- {line}")
    n = max((len(v) for v in runs.values()), default=0)
    print(f"\nMedians of {n} runs. Mpps: frames delivered to the far side per second; loss: "
          "stamped packets sent but not received; latency: stamp to receipt (µs), at "
          "saturation mostly queueing. CPU per delivered frame: core 1 = the busy time of the "
          "core the gateway is pinned to (its threads, and for the kernel its softirq work, sent "
          "there by RPS); process = the gateway process's own threads; machine − direct = both "
          "cores' busy time minus the no-gateway baseline's, per frame (it also charges a gateway "
          "for the generator's core idling on its losses). The AF_XDP gateways' receive side (the "
          "veth's XDP redirect into their socket, a copy) runs on the generator's core, so core 1 "
          "leaves it out of both statewall's and testpmd's figures alike; all three gateways' core "
          "1 includes the far host's receive (its XDP copy runs where the gateway transmits). "
          "Core-1 busy %: its busy time over the run; /proc/stat samples it at the tick, which "
          "under-reports work done in short wake-ups (light loads): there the process figure, "
          "from schedstat, is exact.\n")
    for traffic, title in [("udp", "UDP, 64-byte frames, as fast as the generator goes"),
                           ("tcp", "Stateful TCP (handshake, data both ways), 74-byte frames"),
                           ("rate", "UDP at fixed rates below saturation, 10k flows: latency, and "
                            "how busy the gateway's core is at a light load")]:
        keys = sorted({k for k in runs if k[1] == traffic},
                      key=lambda k: (k[2], GATEWAYS.index(k[0])))
        if not keys:
            continue
        print(f"### {title}\n")
        print(f"| {'pps' if traffic == 'rate' else 'flows'} | gateway | Mpps delivered | loss % "
              "| p50 µs | p99 µs | core-1 busy % | core-1 ns/pkt | process ns/pkt "
              "| machine − direct ns/pkt |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k in keys:
            r = runs[k]
            g = gateway_ns(runs, k)
            print(f"| {k[2]} | {k[0]} | {fmt(med(r, 'mpps'), '.3f')} | "
                  f"{fmt(med(r, 'loss'), '.2f')} | "
                  f"{fmt(med(r, 'p50'), '.1f')} | {fmt(med(r, 'p99'), '.1f')} | "
                  f"{fmt(med(r, 'busy_pct'), '.0f')} | "
                  f"{fmt(med(r, 'core_ns'), '.0f')} | {fmt(med(r, 'process_ns'), '.0f')} | "
                  f"{fmt(g, '.0f')} |")
        print()
        ratios = []
        for flows in sorted({k[2] for k in keys}):  # or rates
            sw = runs.get(("statewall", traffic, flows))
            if not sw:
                continue
            row = [str(flows)]
            for key in ("core_ns", "machine"):
                a = core_or_machine(runs, ("statewall", traffic, flows), key)
                for other in ("kernel", "testpmd"):
                    b = core_or_machine(runs, (other, traffic, flows), key)
                    row.append(fmt(a / b if a and b and b > 0 else None, ".2f"))
            ratios.append(row)
        if ratios:
            print("statewall's ns/pkt as a fraction of the others' (target: ≤ 0.33 of the "
                  "kernel's, ≤ 1.10 of testpmd's):\n")
            print(f"| {'pps' if traffic == 'rate' else 'flows'} | core 1 ÷ kernel "
                  "| core 1 ÷ testpmd | machine−direct ÷ kernel | machine−direct ÷ testpmd |")
            print("|---:|---:|---:|---:|---:|")
            for row in ratios:
                print("| " + " | ".join(row) + " |")
            print()
    tf = out / "raw" / "table-full.json"
    if tf.exists():
        gen = json.loads(tf.read_text())
        before = json.loads((out / "raw" / "table-full.stats-before.json").read_text())
        after = json.loads((out / "raw" / "table-full.stats-after.json").read_text())
        t = gen["totals"]
        print("### Table full: statewall with max 1000 entries, 3000 stateful connections "
              "opened at 1000/s\n")
        print(f"- generator: {t['syn_sent']} SYNs ({t['syn_retransmits']} retransmitted), "
              f"{t['established']} connections established, {t['failed_handshakes']} gave up")
        print(f"- data on established connections: {t['sent']} segments sent, {t['received']} "
              f"received ({gen.get('loss_pct', 0):.2f}% lost)")
        print(f"- statewall: {json.dumps(diff_drops(before, after))}")
        print()


def diff_drops(before, after):
    """Drop and conntrack counters that moved during the table-full run."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                out.update(flat(v, key + "."))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out[key] = v
        return out
    a, b = flat(before), flat(after)
    keep = ("drop", "table_full", "early", "entries", "inserted", "expired")
    return {k: b[k] - a.get(k, 0) if "entries" not in k else b[k]
            for k in sorted(b)
            if any(s in k for s in keep) and (b[k] != a.get(k, 0) or "entries" in k)
            and "per_core" not in k}

