"""swlab: the Python side of Statewall's lab and test scripts.

Run it as `/usr/bin/python3 scripts/swlab COMMAND ...` from anywhere (or `python3 -m swlab`
with scripts/ on the path); `scripts/swlab help` lists the commands. Debian's python3 is
meant (python3-scapy lives there), not another python3 on PATH.

Modules:
  dsl            the scenario language: Scenario, Tcp, udp/echo/icmp_error, @scenario
  scenarios/     the differential scenarios of tests/scenarios/ (and the IP fragment ones of
                 tests/scenarios-fragments/), one module per topic
  kernel_lab     replays a scenario's capture into the kernel (netns, bridge, iptables)
  pcapng         pcap/pcapng reading and writing, packet summaries, flow keys (no scapy)
  kernel_oracle  the kernel's per-packet answers from scripts/capture-lab.sh's recordings
  verdicts       `statewall replay` output beside the kernel's answers, as tables
  nfct           /proc/net/nf_conntrack lines (the kernel's or statewallctl's) as JSON
  netpeer        small TCP/UDP echo peers with fixed ports, for the lab tests
  e2e_report     the report of scripts/bench-e2e.sh
"""

import os

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(SCRIPTS)
SCEN_DIR = os.path.join(REPO, "tests", "scenarios")
# IP fragment scenarios: recorded like tests/scenarios but kept apart until the engine
# reassembles (tests/scenarios-fragments/README.md).
FRAG_DIR = os.path.join(REPO, "tests", "scenarios-fragments")
# Seeded random scenarios (`swlab random`; tests/scenarios-random/README.md).
RAND_DIR = os.path.join(REPO, "tests", "scenarios-random")
