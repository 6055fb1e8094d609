#!/bin/sh
# keepalived's notify script for the Linux box of a mixed pair: conntrack-tools'
# primary-backup.sh (Debian: /usr/share/doc/conntrackd/examples/sync/primary-backup.sh) does
# the sync (commit, flush, resync, bulk; or purge and request), and the bridge forwards only
# on the primary: on the backup a first rule in iptables' FORWARD chain (comment
# `ha-standby`) drops everything, as the Statewall box's standby ruleset does; the primary
# takes it out, and the ruleset's own rules decide again.
set -u

PRIMARY_BACKUP=${PRIMARY_BACKUP:-/etc/conntrackd/primary-backup.sh}

standby() {
	for ipt in iptables ip6tables; do
		$ipt -C FORWARD -m comment --comment ha-standby -j DROP 2>/dev/null ||
			$ipt -I FORWARD 1 -m comment --comment ha-standby -j DROP
	done
}

active() {
	for ipt in iptables ip6tables; do
		while $ipt -D FORWARD -m comment --comment ha-standby -j DROP 2>/dev/null; do :; done
	done
}

case "${1:-}" in
primary)
	sh "$PRIMARY_BACKUP" primary
	active
	;;
backup | fault)
	standby
	sh "$PRIMARY_BACKUP" "$1"
	;;
*)
	echo "usage: $0 primary|backup|fault" >&2
	exit 2
	;;
esac
exit 0
