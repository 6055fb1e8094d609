//! Connection-state sync with a peer gateway, over conntrackd's protocol (issue 14): a
//! Statewall box is the peer of another Statewall box or of a Linux box running conntrackd
//! 1.4.7, as keepalived's primary/backup recipe pairs them.
//!
//! Here, without I/O: the messages ([`wire`], byte for byte as conntrackd reads and writes
//! them, checked against a real conntrackd 1.4.7 both ways by scripts/test-sync-conntrackd.sh),
//! entries to and from messages ([`entry`]), FTP expectations to and from messages
//! ([`expect`]), what a shard tells its peer ([`events`]), and one
//! side of the link in NOTRACK or FTFW mode ([`peer`]). The daemon's sync thread, the
//! external cache and `statewallctl sync` are the runtime's (dataplane/src/runtime/sync);
//! docs/ha.md says how to run a pair.

pub mod entry;
pub mod events;
pub mod expect;
pub mod peer;
pub mod wire;
