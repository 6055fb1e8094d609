#!/usr/bin/env bash
# Install what Statewall's build, tests and lab need on Debian 12 (bookworm) or later.
#
# Idempotent: when every package is already installed, apt is not touched, so repeated runs
# (scripts/test.sh calls this each time) take well under a second. Run as root on a fresh
# machine; as another user it only checks and reports what is missing.
# Downloads nothing outside the distribution's package archive but ruff, the Python linter
# (from PyPI, into a venv under /opt); the Rust toolchain must come from rustup, installed
# beforehand (see the message below).
set -euo pipefail

PROG=install-deps
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/lib/common.sh"

# Build: the workspace, the AF_XDP/eBPF parts (clang, llvm, libelf, zlib), libpcap for replay.
# Tests and lab: namespaces (iproute2), the kernel oracle (iptables, nftables, ipset, tcpdump, tshark), peers
# (python3 http.server, scapy, vsftpd + lftp/ftp, iperf3, curl, ping), ethtool for offloads,
# tmux (statewallctl top is tested on a real terminal); systemd-analyze (systemd), strace and
# setpriv/unshare/prlimit/nsenter (util-linux) for the unit's test (test-systemd.sh);
# conntrackd and keepalived, the peers of the sync tests (test-sync-conntrackd.sh).
# Lints: shellcheck, and python3-venv for ruff's venv.
PACKAGES=(
	build-essential pkg-config m4 clang llvm libelf-dev zlib1g-dev libpcap-dev
	iproute2 iptables tcpdump tshark python3 python3-scapy python3-venv curl ethtool procps
	iputils-ping jq vsftpd iperf3 lftp ftp shellcheck ca-certificates tmux conntrack man-db
	systemd strace util-linux nftables ipset conntrackd keepalived
)

# `--bench` adds what scripts/bench-e2e.sh compares against: DPDK's testpmd with its AF_XDP
# driver (the raw AF_XDP forwarding ceiling) and conntrack-tools (to flush the kernel's table
# between runs).
if [[ ${1:-} == --bench ]]; then
	PACKAGES+=(dpdk-dev librte-net-af-xdp23)
fi

missing=()
for p in "${PACKAGES[@]}"; do
	# `dpkg -s` says "install ok installed" only for a package that is fully installed.
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing packages: ${missing[*]}" >&2
		echo "install-deps: run this script as root (sudo $0) to install them" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# tshark's package asks whether non-root users may capture; answer "no" up front.
	echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
	apt-get update -q
	# vsftpd's, conntrackd's and keepalived's packages would start system-wide daemons; the
	# labs run their own copies inside network namespaces. A policy-rc.d that refuses every
	# start keeps them from starting during the install (unless one is there already), and
	# under systemd they are disabled after it.
	made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	rc=0
	apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}" || rc=$?
	((made_policy)) && rm -f /usr/sbin/policy-rc.d
	((rc == 0)) || exit "$rc"
	if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
		systemctl disable --now vsftpd conntrackd keepalived >/dev/null 2>&1 || true
	fi
else
	echo "install-deps: all ${#PACKAGES[@]} system packages present"
fi

# ruff lints scripts/swlab (scripts/test.sh, settings in scripts/ruff.toml). Debian's python3
# is externally managed (PEP 668: no pip into the system), so ruff gets a venv of its own.
# Without PyPI (an offline machine) this only warns: scripts/test.sh then byte-compiles the
# Python instead.
RUFF_VERSION=0.17.6
RUFF_VENV=/opt/statewall-lint
if [[ $("$RUFF_VENV/bin/ruff" --version 2>/dev/null) == "ruff $RUFF_VERSION" ]]; then
	echo "install-deps: ruff $RUFF_VERSION present ($RUFF_VENV)"
elif [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: ruff $RUFF_VERSION is not in $RUFF_VENV; run this script as root to install it" >&2
elif "$PY" -m venv --clear "$RUFF_VENV" &&
	"$RUFF_VENV/bin/pip" install -q --disable-pip-version-check "ruff==$RUFF_VERSION"; then
	echo "install-deps: installed ruff $RUFF_VERSION in $RUFF_VENV"
else
	echo "install-deps: could not install ruff $RUFF_VERSION from PyPI into $RUFF_VENV;" \
		"scripts/test.sh will only byte-compile the Python" >&2
fi

# The Rust toolchain comes from rustup (the distribution's cargo is too old for the workspace).
load_cargo_env
if ! command -v cargo >/dev/null 2>&1; then
	cat >&2 <<'MSG'
install-deps: cargo not found on PATH and no ~/.cargo/env to source.
Install the Rust toolchain with rustup (https://rustup.rs), for example:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
        --component rustfmt,clippy
then open a new shell (or `. ~/.cargo/env`) and run this script again.
MSG
	exit 1
fi

# rustfmt and clippy run in scripts/test.sh. `rustup component add` needs the network; when it
# fails but the tool already works (offline CI image), carry on.
if command -v rustup >/dev/null 2>&1; then
	for c in rustfmt clippy; do
		tool=$c
		[[ $c == clippy ]] && tool=cargo-clippy
		if ! command -v "$tool" >/dev/null 2>&1 || ! "$tool" --version >/dev/null 2>&1; then
			rustup component add "$c" || {
				echo "install-deps: could not add rustup component $c" >&2
				exit 1
			}
		fi
	done
fi
for t in "cargo fmt" "cargo clippy"; do
	if ! $t --version >/dev/null 2>&1; then
		echo "install-deps: \`$t\` does not work; install it with: rustup component add ${t#cargo }" >&2
		exit 1
	fi
done
echo "install-deps: $(cargo --version)"
