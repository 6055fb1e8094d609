//! Connection-state sync with a peer gateway, over conntrackd's protocol (issue 14): a
//! Statewall box is the peer of another Statewall box or of a Linux box running conntrackd
//! 1.4.7, as keepalived's primary/backup recipe pairs them.
//!
//! So far: the messages themselves ([`wire`]), read and written byte for byte as conntrackd
//! does, checked against datagrams a real conntrackd sent (tests/sync_wire.rs) and, live,
//! against a running conntrackd 1.4.7 both ways (scripts/test-sync-conntrackd.sh: what
//! Statewall writes lands in conntrackd's external cache and, committed, in its kernel's
//! table). Still to come: entries to and
//! from messages, the sync thread and its NOTRACK and FTFW modes, the external cache and its
//! commit, `statewallctl sync`.

pub mod entry;
pub mod events;
pub mod peer;
pub mod wire;
