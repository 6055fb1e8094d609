#!/usr/bin/env bash
# The Debian package, installed for real: scripts/package.sh builds it from the release
# binaries, `dpkg -i` installs it into this system, and then
#   - `statewall check` without a path validates the installed /etc/statewall/statewall.yaml
#     (a conffile), and without that file `check` and `run` name it and how to give another;
#   - `man statewall` (and every page of the package) renders without a groff warning;
#   - the bash, zsh and fish completions are where those shells look, and bash's completes;
#   - statewall, statewallctl and statewall-pktgen answer --help and --version;
#   - `dpkg -r` removes every file but the conffile, `dpkg -P` that too: every path of the
#     package that was not on the machine before is gone.
# The machine is left as it was found, on failure too (an EXIT trap purges the package). A
# machine where dpkg knows a statewall package already, or where a file of the package exists
# already, is refused: this test touches neither.
#
#   scripts/test-package.sh
#
# Needs root and target/release/{statewall,statewallctl,statewall-pktgen} (cargo build
# --release). The last line is "N passed, N failed"; the exit status is 1 on a failure.
#
# `A && ok ... || fail ...` is meant throughout: fail only records why the check failed.
# shellcheck disable=SC2015
set -euo pipefail

PROG=test-package
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
cd "$REPO"
need_root "dpkg -i into this system"
need_cmds dpkg dpkg-deb dpkg-query man bash

# Never touch a statewall package that is not ours.
status=$(dpkg-query -W -f='${db:Status-Status}' statewall 2>/dev/null || true)
if [[ -n $status && $status != not-installed ]]; then
	die "dpkg knows a statewall package on this machine already (status: $status); not touching it"
fi

TMP=$(mktemp -d /tmp/sw-package-test.XXXXXX)
CONF=/etc/statewall/statewall.yaml
installed=0
state=0 # 1 once this test made /var/lib/statewall
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	set +e
	[[ -f $TMP/conf.moved ]] && mv -f "$TMP/conf.moved" "$CONF"
	((state)) && rm -rf /var/lib/statewall
	if ((installed)); then
		dpkg -P statewall >"$TMP/purge.log" 2>&1 || {
			echo "$PROG: could not purge the statewall package:" >&2
			cat "$TMP/purge.log" >&2
		}
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

passed=0
failed=0
ok() {
	passed=$((passed + 1))
	echo "PASS $*"
}
fail() {
	failed=$((failed + 1))
	echo "FAIL $*"
}

scripts/package.sh --no-build --out "$TMP" >"$TMP/package.log" 2>&1 || {
	cat "$TMP/package.log" >&2
	die "scripts/package.sh failed"
}
DEB=$(tail -n 1 "$TMP/package.log")
VERSION=$(dpkg-deb -f "$DEB" Version)
[[ -f $DEB && $(basename "$DEB") == statewall_${VERSION}_$(dpkg --print-architecture).deb ]] &&
	ok "package.sh built $(basename "$DEB")" || fail "package.sh: no $DEB"

# What the package holds (absolute paths, directories without their slash), and which of those
# are on the machine already. A file that exists would be overwritten and then removed: refuse.
dpkg-deb --fsys-tarfile "$DEB" | tar -t | sed 's|^\./|/|' | grep -vx / >"$TMP/entries"
sed 's|/$||' "$TMP/entries" >"$TMP/paths"
touch "$TMP/existing"
while read -r e; do
	p=${e%/}
	[[ -e $p || -L $p ]] || continue
	# A directory may be there already (or a link to one: /lib on a merged-/usr system).
	[[ $e == */ && -d $p ]] ||
		die "$p exists already and is not from a statewall package; not overwriting it"
	echo "$p" >>"$TMP/existing"
done <"$TMP/entries"

installed=1
if dpkg -i "$DEB" >"$TMP/install.log" 2>&1; then
	ok "dpkg -i"
else
	cat "$TMP/install.log" >&2
	fail "dpkg -i"
	echo "0 passed, 1 failed"
	exit 1
fi
[[ $(dpkg-query -W -f='${Status} ${Version}' statewall) == "install ok installed $VERSION" ]] &&
	ok "dpkg says statewall $VERSION is installed" || fail "dpkg-query: $(dpkg-query -W -f='${Status} ${Version}' statewall)"
dpkg-query -W -f='${Conffiles}\n' statewall | grep -q "^ $CONF " &&
	ok "$CONF is a conffile" || fail "$CONF is not among the conffiles"
missing=()
for f in /usr/bin/statewall /usr/bin/statewallctl /usr/bin/statewall-pktgen \
	/lib/systemd/system/statewall.service /usr/share/doc/statewall/copyright \
	/usr/share/doc/statewall/changelog.gz; do
	[[ -f $f ]] || missing+=("$f")
done
((${#missing[@]} == 0)) && ok "binaries, unit, copyright, changelog installed" ||
	fail "not installed: ${missing[*]}"

# The default config, from / so that no relative path can be what is found.
out=$(cd / && statewall check 2>&1) && [[ $out == "$CONF: ok: "*" 0 warning(s)" ]] &&
	ok "statewall check (no path): $out" || fail "statewall check on the installed default: $out"
mv "$CONF" "$TMP/conf.moved"
out=$(cd / && statewall check 2>&1) && rc=0 || rc=$?
[[ $rc == 1 && $out == *"$CONF (the default config) does not exist: give another with \`statewall check FILE\`"* ]] &&
	ok "statewall check without the default names it" || fail "check without $CONF: exit $rc: $out"
out=$(cd / && statewall run --control-socket "$TMP/sock" 2>&1) && rc=0 || rc=$?
[[ $rc == 1 && $out == *"$CONF (the default config) does not exist: give another with \`statewall run --config FILE\`"* ]] &&
	ok "statewall run without the default names it" || fail "run without $CONF: exit $rc: $out"
mv "$TMP/conf.moved" "$CONF"

# Man pages: found by name, rendered, and every page of the package free of groff warnings.
[[ $(man -w statewall 2>&1) == /usr/share/man/man1/statewall.1.gz ]] &&
	ok "man -w statewall" || fail "man -w statewall: $(man -w statewall 2>&1)"
page=$(MANPAGER=cat MANWIDTH=80 LC_ALL=C.UTF-8 man statewall 2>&1) || true
[[ $page == *"statewall - Userspace stateful firewall"* && $page == *"statewall-run(1)"* ]] &&
	ok "man statewall renders" || fail "man statewall: $page"
page=$(MANPAGER=cat MANWIDTH=80 LC_ALL=C.UTF-8 man statewall-run 2>&1) || true
[[ $page == *"--workers <N|auto>"* && $page == *"/etc/statewall/statewall.yaml"* ]] &&
	ok "man statewall-run documents --workers auto and the default config" ||
	fail "man statewall-run: $page"
pages=0
warned=()
while read -r p; do
	pages=$((pages + 1))
	w=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings=all -l "$p" 2>&1 >/dev/null)
	[[ -z $w ]] || warned+=("$p: $w")
done < <(grep '^/usr/share/man/man1/.*\.1\.gz$' "$TMP/paths")
for b in statewall statewallctl statewall-pktgen; do
	grep -qx "/usr/share/man/man1/$b.1.gz" "$TMP/paths" || warned+=("no page for $b")
done
((${#warned[@]} == 0 && pages >= 3)) && ok "$pages man pages render without warnings" ||
	fail "man pages: ${warned[*]}"

# Completions where bash-completion, zsh (Debian's vendor directory) and fish look.
missing=()
for b in statewall statewallctl statewall-pktgen; do
	for f in "/usr/share/bash-completion/completions/$b" "/usr/share/zsh/vendor-completions/_$b" \
		"/usr/share/fish/vendor_completions.d/$b.fish"; do
		[[ -s $f ]] || missing+=("$f")
	done
	head -n 1 "/usr/share/zsh/vendor-completions/_$b" | grep -qx "#compdef $b" || missing+=("_$b: no #compdef")
done
((${#missing[@]} == 0)) && ok "completions for bash, zsh and fish in place" || fail "completions: ${missing[*]}"
# bash completes subcommands and options with them.
words=$(bash -c '. /usr/share/bash-completion/completions/statewall
	COMP_WORDS=(statewall r); COMP_CWORD=1; _statewall statewall r statewall; echo "${COMPREPLY[*]}"
	COMP_WORDS=(statewall run --wo); COMP_CWORD=2; _statewall statewall --wo run; echo "${COMPREPLY[*]}"
	. /usr/share/bash-completion/completions/statewallctl
	COMP_WORDS=(statewallctl con); COMP_CWORD=1; _statewallctl statewallctl con statewallctl; echo "${COMPREPLY[*]}"' 2>&1)
[[ $words == $'run replay\n--workers\nconntrack' ]] && ok "bash completes statewall r, run --wo, statewallctl con" ||
	fail "bash completion gave: $words"
for sh in zsh fish; do
	command -v "$sh" >/dev/null 2>&1 || continue
	for b in statewall statewallctl statewall-pktgen; do
		f=/usr/share/zsh/vendor-completions/_$b
		[[ $sh == fish ]] && f=/usr/share/fish/vendor_completions.d/$b.fish
		"$sh" -n "$f" || fail "$sh -n $f"
	done
done

# The binaries run.
missing=()
for b in statewall statewallctl statewall-pktgen; do
	[[ $(command -v "$b") == /usr/bin/$b ]] && "$b" --help >"$TMP/help" 2>&1 && [[ -s $TMP/help ]] ||
		missing+=("$b")
done
((${#missing[@]} == 0)) && ok "/usr/bin/* --help of all three" || fail "--help of ${missing[*]}"
grep -q 'conntrack' < <(statewallctl --help) && ok "statewallctl --help lists conntrack" || fail "statewallctl --help"
[[ $(statewall --version) == "statewall $VERSION" && $(statewallctl --version) == "statewallctl $VERSION" ]] &&
	ok "--version says $VERSION" || fail "--version: $(statewall --version), $(statewallctl --version)"

# Remove: everything but the conffile goes; purge: that too, and the unit's StateDirectory=
# (made here as systemd would, when this machine has none). Nothing of the package that was
# not here before stays.
state=0
if [[ ! -e /var/lib/statewall ]]; then
	mkdir -m 0700 /var/lib/statewall && touch /var/lib/statewall/state && state=1
fi
dpkg -r statewall >"$TMP/remove.log" 2>&1 && ok "dpkg -r" || {
	cat "$TMP/remove.log"
	fail "dpkg -r"
}
[[ $(dpkg-query -W -f='${db:Status-Status}' statewall 2>/dev/null) == config-files ]] &&
	ok "after dpkg -r only the config files remain" || fail "status after dpkg -r: $(dpkg-query -W -f='${Status}' statewall 2>&1)"
left=()
while read -r p; do
	[[ $p == "$CONF" || $p == /etc/statewall ]] && continue
	grep -qx -- "$p" "$TMP/existing" && continue
	[[ -e $p || -L $p ]] && left+=("$p")
done <"$TMP/paths"
((${#left[@]} == 0)) && [[ -f $CONF ]] && ok "dpkg -r removed every file but the conffile" ||
	fail "after dpkg -r: left ${left[*]:-nothing}; conffile $([[ -f $CONF ]] && echo kept || echo gone)"
dpkg -P statewall >"$TMP/purge.log" 2>&1 && installed=0 && ok "dpkg -P" || {
	cat "$TMP/purge.log"
	fail "dpkg -P"
}
status=$(dpkg-query -W -f='${db:Status-Status}' statewall 2>/dev/null || true)
[[ -z $status || $status == not-installed ]] && ok "dpkg has forgotten statewall" || fail "status after dpkg -P: $status"
left=()
while read -r p; do
	grep -qx -- "$p" "$TMP/existing" && continue
	[[ -e $p || -L $p ]] && left+=("$p")
done <"$TMP/paths"
((state)) && [[ -e /var/lib/statewall ]] && left+=(/var/lib/statewall)
((${#left[@]} == 0)) && ok "dpkg -P left nothing of the package" || fail "after dpkg -P: left ${left[*]}"

echo "$passed passed, $failed failed"
((failed == 0))
