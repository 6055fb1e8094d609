# shellcheck shell=bash
# conntrackd's configuration for the sync lab tests (scripts/test-sync-conntrackd.sh,
# test-sync-daemon.sh, test-failover.sh). Sourced, never run:
#
#   conntrackd_conf FILE MODE LINK LOCAL PEER [OPTIONS]
#       write FILE, a conntrackd.conf: MODE notrack or ftfw (ResendQueueSize 131072,
#       ACKWindowSize 300), the external cache on; LINK udp (unicast from LOCAL to PEER) or
#       multicast (group 225.0.0.50 joined on LOCAL), port 3780 on the interface sync0; its
#       log, lock file and control socket beside FILE (FILE less `.conf`, then `.log`,
#       `.lock`, `.ctl`); OPTIONS, lines of the Sync section's Options block (e.g.
#       "ExpectationSync On"). The sync link's own addresses (10.99.0.1, 10.99.0.2) and
#       127.0.0.1 are filtered out, as conntrack-tools' examples do.

conntrackd_conf() {
	local file=$1 mode=$2 link=$3 local=$4 peer=$5 options=${6:-} base=${1%.conf} m l
	case $mode in
	ftfw) m="Mode FTFW {
		ResendQueueSize 131072
		ACKWindowSize 300
		DisableExternalCache off
	}" ;;
	*) m="Mode NOTRACK {
		DisableExternalCache off
	}" ;;
	esac
	case $link in
	multicast) l="Multicast {
		IPv4_address 225.0.0.50
		Group 3780
		IPv4_interface $local
		Interface sync0
		Checksum on
	}" ;;
	*) l="UDP {
		IPv4_address $local
		IPv4_Destination_Address $peer
		Port 3780
		Interface sync0
		Checksum on
	}" ;;
	esac
	cat >"$file" <<CONF
Sync {
	$m
	$l
	Options {
		$options
	}
}
General {
	HashSize 8192
	HashLimit 65536
	LogFile $base.log
	LockFile $base.lock
	UNIX {
		Path $base.ctl
	}
	NetlinkBufferSize 2097152
	NetlinkBufferSizeMaxGrowth 8388608
	Filter From Userspace {
		Address Ignore {
			IPv4_address 127.0.0.1
			IPv4_address 10.99.0.1
			IPv4_address 10.99.0.2
		}
	}
}
CONF
}
