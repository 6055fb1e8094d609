#!/bin/sh
# keepalived's notify script for a Statewall gateway of an active/backup pair: conntrack-tools'
# doc/sync/primary-backup.sh, with statewallctl where it has conntrackd. Install it as
# /etc/statewall/ha/statewall-notify.sh and name it in keepalived.conf:
#
#   notify_master "/etc/statewall/ha/statewall-notify.sh primary"
#   notify_backup "/etc/statewall/ha/statewall-notify.sh backup"
#   notify_fault  "/etc/statewall/ha/statewall-notify.sh fault"
#
# primary   commit the external cache into the table (conntrackd -c), empty it (-f), load
#           the forwarding ruleset, send the whole table to the new backup (-B)
# backup    load the standby ruleset (the same one with `raw: {policy: drop}`: nothing is
#           forwarded and no connection starts here), shorten every timeout so that what the
#           old primary left here goes unless traffic refreshes it (-t), ask the primary for
#           its table (-n)
# fault     as backup, without asking
#
# Both rulesets carry the same `sync:` section (the link stays as it is). Settings, from the
# environment keepalived gives its scripts or the defaults:
#   STATEWALLCTL      statewallctl                      STATEWALL_SOCKET  /run/statewall/control.sock
#   STATEWALL_ACTIVE  /etc/statewall/statewall.yaml     STATEWALL_STANDBY /etc/statewall/standby.yaml
set -u

CTL=${STATEWALLCTL:-statewallctl}
SOCKET=${STATEWALL_SOCKET:-/run/statewall/control.sock}
ACTIVE=${STATEWALL_ACTIVE:-/etc/statewall/statewall.yaml}
STANDBY=${STATEWALL_STANDBY:-/etc/statewall/standby.yaml}

ctl() {
	if ! "$CTL" --socket "$SOCKET" "$@" >/dev/null; then
		logger -t statewall-ha "statewallctl $* failed" 2>/dev/null || echo "statewall-ha: statewallctl $* failed" >&2
		return 1
	fi
}

case "${1:-}" in
primary)
	ctl sync commit
	ctl sync flush
	ctl apply "$ACTIVE"
	ctl sync bulk
	;;
backup)
	ctl apply "$STANDBY"
	ctl sync purge
	ctl sync request
	;;
fault)
	ctl apply "$STANDBY"
	ctl sync purge
	;;
*)
	echo "usage: $0 primary|backup|fault" >&2
	exit 2
	;;
esac
exit 0
