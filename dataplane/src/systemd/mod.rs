//! Running under systemd: the `Type=notify` protocol (`notify`: `sd_notify(3)` over a unix
//! datagram socket, no libsystemd) and what the daemon tells systemd when (`service`: ready,
//! reloading, stopping, status, and a watchdog fed only while every worker makes progress).
//! The unit is `packaging/statewall.service`; `docs/systemd.md` explains its choices.

pub mod notify;
pub mod service;

pub use service::Service;
