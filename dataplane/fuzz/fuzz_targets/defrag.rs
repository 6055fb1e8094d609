//! IP fragment reassembly on arbitrary fragments: records either build a fragment from a few
//! fields (so that offsets, lengths, ids and flags collide the way an attacker would make
//! them) or are raw frames. Small memory limits, a clock that moves with the input. Nothing
//! may panic, every complete datagram and every frame sent for it must parse, and after the
//! timeouts everything is given back.
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run defrag`.
#![no_main]

use std::net::IpAddr;

use engine::defrag::{Defrag, FragLimits, Gather};
use engine::packet::IpFamily;
use engine::wire::build::{ip_frame, IpOpts};
use engine::wire::{self, proto};
use libfuzzer_sys::fuzz_target;

const S: u64 = 1_000_000_000;

fuzz_target!(|data: &[u8]| {
    let v4 = FragLimits {
        high_thresh: 64 * 1024,
        ..FragLimits::IPV4
    };
    let v6 = FragLimits {
        high_thresh: 64 * 1024,
        ..FragLimits::IPV6
    };
    let mut d = Defrag::new(v4, v6, 1);
    let mut now = S;
    let mut rest = data;
    let mut frame = Vec::new();
    // Records: [ctl] then, built: [id][offset/8 hi][offset/8 lo][len hi][len lo][fill];
    // raw: [len hi][len lo][len bytes].
    while let Some((&ctl, tail)) = rest.split_first() {
        rest = tail;
        now += u64::from(ctl & 0x0f) * S / 4;
        if ctl & 0x80 != 0 {
            let Some((&[hi, lo], tail)) = rest.split_first_chunk::<2>() else {
                break;
            };
            let len = usize::from(u16::from_be_bytes([hi, lo])).min(tail.len());
            frame.clear();
            frame.extend_from_slice(&tail[..len]);
            rest = &tail[len..];
        } else {
            let Some((&[id, oh, ol, lh, ll, fill], tail)) = rest.split_first_chunk::<6>() else {
                break;
            };
            rest = tail;
            let (src, dst): (IpAddr, IpAddr) = if ctl & 0x40 != 0 {
                ("fd00::2".parse().unwrap(), "fd00::3".parse().unwrap())
            } else {
                ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap())
            };
            let ip = IpOpts {
                id: u32::from(id & 7),
                frag_offset: (u16::from_be_bytes([oh, ol]) & 0x1fff) << 3,
                more_frags: ctl & 0x20 != 0,
                ..IpOpts::default()
            };
            let len = usize::from(u16::from_be_bytes([lh, ll])) % 9000;
            if ip.frag_offset == 0 && !ip.more_frags {
                continue;
            }
            if src.is_ipv4() && 20 + len > 65_535 {
                continue;
            }
            frame = ip_frame(src, dst, proto::UDP, &vec![fill; len], &ip);
        }
        let Ok(m) = wire::parse(&frame) else { continue };
        if d.gather(now, &frame, &m, ctl >> 4 & 1, 0) == Gather::Complete {
            let whole = d.datagram().expect("a complete datagram").to_vec();
            assert!(wire::parse(&whole).is_ok());
            d.each_fragment(|_, f| assert!(wire::parse(f).is_ok()));
        }
        d.expire(now, 4);
    }
    d.expire(u64::MAX / 2, usize::MAX);
    assert_eq!(d.occupancy(IpFamily::V4), (0, 0));
    assert_eq!(d.occupancy(IpFamily::V6), (0, 0));
});
