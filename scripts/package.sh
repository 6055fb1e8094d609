#!/usr/bin/env bash
# Build the Debian package statewall_<version>_<arch>.deb: statewall, statewallctl and
# statewall-pktgen in /usr/bin, the systemd unit (packaging/statewall.service, not enabled),
# the commented default config /etc/statewall/statewall.yaml (packaging/statewall.yaml, a
# conffile), man pages and bash/zsh/fish completions generated from the binaries' own CLI
# definitions (their hidden `--generate-docs DIR`, packaging/clidoc), the ruleset reference
# and examples, copyright and changelog.
#
#   scripts/package.sh [--out DIR] [--no-build]
#
#   --out DIR    where the .deb goes (default: target/debian, CARGO_TARGET_DIR respected)
#   --no-build   package the release binaries as they are (default: cargo build --release of
#                the three first; a no-op when they are up to date)
#
# Plain dpkg-deb, nothing to install: the tree is staged with root as owner, fixed modes and
# every mtime at SOURCE_DATE_EPOCH (default: the last commit's time), binaries stripped as
# dh_strip does, pages gzipped with -n, so the same sources give the same .deb byte for byte.
# Depends: comes from dpkg-shlibdeps. The last line of output is the .deb's path.
set -euo pipefail

PROG=package
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
cd "$REPO"

OUT=$(dirname "$RELEASE")/debian
BUILD=1
while (($#)); do
	case $1 in
	--out)
		[[ $# -ge 2 ]] || die "--out needs a directory"
		OUT=$2
		shift 2
		;;
	--no-build)
		BUILD=0
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

load_cargo_env
need_cmds dpkg-deb dpkg-shlibdeps dpkg gzip strip git cargo
[[ -f packaging/statewall.service ]] || die "packaging/statewall.service is missing"
BINS=(statewall statewallctl statewall-pktgen)
if ((BUILD)); then
	cargo build --release --bins -p statewall-dataplane -p statewall-control \
		-p statewall-pktgen
fi
need_bins "${BINS[@]/#/$RELEASE/}"

# The workspace's version ([workspace.package] in Cargo.toml), the machine's architecture.
VERSION=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
[[ $VERSION =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "cannot read the version from Cargo.toml"
ARCH=$(dpkg --print-architecture)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || stat -c %Y Cargo.toml)}
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
MAINTAINER="Statewall maintainers <maintainers@statewall.invalid>"
DEB=statewall_${VERSION}_${ARCH}.deb

umask 022
WORK=$(mktemp -d /tmp/sw-package.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
DOC=$ROOT/usr/share/doc/statewall
mkdir -p "$ROOT/DEBIAN" "$ROOT/usr/bin" "$ROOT/usr/share/man/man1" "$ROOT/lib/systemd/system" \
	"$ROOT/etc/statewall" "$DOC/examples" "$ROOT/usr/share/bash-completion/completions" \
	"$ROOT/usr/share/zsh/vendor-completions" "$ROOT/usr/share/fish/vendor_completions.d"

# Binaries, stripped as dh_strip does (the release profile keeps line tables for perf).
for b in "${BINS[@]}"; do
	install -m 0755 "$RELEASE/$b" "$ROOT/usr/bin/$b"
	strip --strip-unneeded --remove-section=.comment --remove-section=.note "$ROOT/usr/bin/$b"
done

# Man pages and completions, from each binary's clap definition.
for b in "${BINS[@]}"; do
	"$RELEASE/$b" --generate-docs "$WORK/docs/$b" >/dev/null
	for page in "$WORK/docs/$b"/man1/*.1; do
		name=$(basename "$page")
		gzip -9n <"$page" >"$ROOT/usr/share/man/man1/$name.gz"
	done
	install -m 0644 "$WORK/docs/$b/bash/$b" "$ROOT/usr/share/bash-completion/completions/$b"
	install -m 0644 "$WORK/docs/$b/zsh/_$b" "$ROOT/usr/share/zsh/vendor-completions/_$b"
	install -m 0644 "$WORK/docs/$b/fish/$b.fish" "$ROOT/usr/share/fish/vendor_completions.d/$b.fish"
done

install -m 0644 packaging/statewall.service "$ROOT/lib/systemd/system/statewall.service"
install -m 0644 packaging/statewall.yaml "$ROOT/etc/statewall/statewall.yaml"
echo /etc/statewall/statewall.yaml >"$ROOT/DEBIAN/conffiles"

# Documentation: compressed past 4 KiB, as Debian policy asks.
for f in README.md docs/ruleset.md docs/conntrack.md docs/deploy.md; do
	[[ -f $f ]] || continue
	name=$(basename "$f")
	gzip -9n <"$f" >"$DOC/$name.gz"
done
install -m 0644 examples/*.yaml "$DOC/examples/"

# The changelog of a native package, dated by SOURCE_DATE_EPOCH.
cat >"$WORK/changelog" <<EOF
statewall ($VERSION) unstable; urgency=medium

  * Built from the statewall repository at commit $COMMIT.

 -- $MAINTAINER  $(LC_ALL=C TZ=UTC date -R -d "@$SOURCE_DATE_EPOCH")
EOF
gzip -9n <"$WORK/changelog" >"$DOC/changelog.gz"

# copyright in the machine-readable format, with the crates linked into the binaries.
crates=$(cargo tree --quiet --offline -e normal,no-proc-macro --prefix none --format '{p}: {l}' \
	-p statewall-dataplane -p statewall-control -p statewall-pktgen 2>/dev/null |
	grep -v -e ' (/' -e '^statewall' -e '(proc-macro)' -e '^$' | sed 's/ (\*)$//' | sort -u |
	sed 's/^/ /') ||
	crates=" (cargo tree unavailable when packaged)"
cat >"$DOC/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: statewall

Files: *
Copyright: The Statewall developers
License: Apache-2.0
Comment: The binaries link these Rust crates statically, each under its own license
 (libbpf and libxdp, vendored by libbpf-sys and libxdp-sys, are LGPL-2.1 OR BSD-2-Clause):
$crates

License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 can be found in
 /usr/share/common-licenses/Apache-2.0.
EOF

# Maintainer scripts, as dh_installsystemd writes them for a unit it neither enables nor
# starts (the ports in the default config are placeholders): systemd learns of the unit and
# forgets it, a running service is stopped on removal, and a purge removes its state
# directory.
cat >"$ROOT/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
EOF
cat >"$ROOT/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] &&
	command -v deb-systemd-invoke >/dev/null; then
	deb-systemd-invoke stop statewall.service >/dev/null || true
fi
EOF
cat >"$ROOT/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
# The unit's StateDirectory= (systemd makes it); /run/statewall, its RuntimeDirectory=, is
# left to the reboot: a daemon started by hand may be using it.
if [ "$1" = purge ]; then
	rm -rf "${DPKG_ROOT:-}/var/lib/statewall"
fi
EOF
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm" "$ROOT/DEBIAN/postrm"

# Depends: the shared libraries the binaries need, as dpkg-shlibdeps finds them.
mkdir -p "$WORK/shlibs/debian"
printf 'Source: statewall\n\nPackage: statewall\nArchitecture: any\n' >"$WORK/shlibs/debian/control"
depends=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O "${BINS[@]/#/-e$ROOT/usr/bin/}" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || die "dpkg-shlibdeps found no dependencies"

size=$(du -sk --apparent-size --exclude=DEBIAN "$ROOT" | cut -f1)
cat >"$ROOT/DEBIAN/control" <<EOF
Package: statewall
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: $depends
Section: net
Priority: optional
Description: userspace stateful firewall dataplane over AF_XDP
 Statewall is a stateful firewall for a dedicated Linux gateway. It decides
 packet for packet as netfilter's connection tracking does (NEW, ESTABLISHED,
 RELATED, INVALID, UNTRACKED, the FTP helper, the kernel's timeouts), in user
 space over AF_XDP, one worker per queue.
 .
 This package ships the daemon statewall with a systemd unit (not enabled: set
 the ports in /etc/statewall/statewall.yaml, check it with "statewall check",
 then "systemctl enable --now statewall"), statewallctl to control the running
 daemon, and statewall-pktgen, an AF_XDP load generator.
EOF

# Reproducible: every mtime at SOURCE_DATE_EPOCH, owners root (--root-owner-group).
find "$ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$OUT"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$OUT/$DEB" >/dev/null
echo "$PROG: $(du -h "$OUT/$DEB" | cut -f1) $VERSION $ARCH; Depends: $depends"
echo "$OUT/$DEB"
