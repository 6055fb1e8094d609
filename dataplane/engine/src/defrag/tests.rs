use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::packet::Fragment;
use crate::wire::build::{ip_frame, IpOpts, Udp};
use crate::wire::{self, proto};

const S: u64 = 1_000_000_000;

fn defrag() -> Defrag {
    Defrag::new(FragLimits::IPV4, FragLimits::IPV6, 1)
}

/// A UDP datagram of `n` payload bytes from `src` to `dst`.
fn udp(src: &str, dst: &str, n: usize, id: u32) -> Udp {
    let mut u = Udp::new(src, dst);
    u.payload = (0..n).map(|i| (i * 7 + 3) as u8).collect();
    u.ip.id = id;
    u
}

/// The fragments of `u` split at the payload-relative `cuts` (multiples of 8).
fn fragments(u: &Udp, cuts: &[usize]) -> Vec<Vec<u8>> {
    let l4 = u.datagram();
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(l4.len());
    bounds
        .windows(2)
        .map(|w| {
            let ip = IpOpts {
                frag_offset: w[0] as u16,
                more_frags: w[1] != l4.len(),
                ..u.ip.clone()
            };
            frag_frame(u.src.ip(), u.dst.ip(), proto::UDP, &l4[w[0]..w[1]], &ip)
        })
        .collect()
}

fn frag_frame(src: IpAddr, dst: IpAddr, p: u8, data: &[u8], ip: &IpOpts) -> Vec<u8> {
    ip_frame(src, dst, p, data, ip)
}

fn feed(d: &mut Defrag, now: u64, frame: &[u8]) -> Gather {
    let m = wire::parse(frame).expect("a frame that parses");
    d.gather(now, frame, &m, 0, 0)
}

fn emitted(d: &mut Defrag) -> Vec<Vec<u8>> {
    let mut out = vec![];
    d.each_fragment(|_, f| out.push(f.to_vec()));
    out
}

#[test]
fn v4_in_order_reversed_and_interleaved() {
    let a = udp("10.0.0.2:1000", "10.0.0.3:5001", 3000, 7);
    let b = udp("10.0.0.2:1001", "10.0.0.3:5001", 2000, 8);
    let fa = fragments(&a, &[1480, 2960]);
    let fb = fragments(&b, &[1480]);
    // In order.
    let mut d = defrag();
    assert_eq!(feed(&mut d, S, &fa[0]), Gather::Held);
    assert_eq!(feed(&mut d, S, &fa[1]), Gather::Held);
    assert_eq!(feed(&mut d, S, &fa[2]), Gather::Complete);
    assert_eq!(d.datagram().unwrap(), &a.frame()[..]);
    let m = wire::parse(d.datagram().unwrap()).unwrap();
    assert_eq!((m.sport, m.dport, m.fragment), (1000, 5001, Fragment::None));
    assert!(wire::l4_checksum_ok(d.datagram().unwrap(), &m));
    assert_eq!(
        emitted(&mut d),
        fa,
        "the bridge sends the original fragments"
    );
    // Reversed and interleaved with another datagram: the same datagrams, fragments out
    // in offset order.
    let mut d = defrag();
    assert_eq!(feed(&mut d, S, &fa[2]), Gather::Held);
    assert_eq!(feed(&mut d, S, &fb[1]), Gather::Held);
    assert_eq!(feed(&mut d, S, &fa[1]), Gather::Held);
    assert_eq!(feed(&mut d, S, &fb[0]), Gather::Complete);
    assert_eq!(d.datagram().unwrap(), &b.frame()[..]);
    assert_eq!(emitted(&mut d), fb);
    assert_eq!(feed(&mut d, S, &fa[0]), Gather::Complete);
    assert_eq!(d.datagram().unwrap(), &a.frame()[..]);
    assert_eq!(emitted(&mut d), fa);
    d.finish();
    assert_eq!(d.occupancy(IpFamily::V4), (0, 0), "everything given back");
    assert_eq!(d.counters(IpFamily::V4).reassembled, 2);
    // Not a fragment.
    assert_eq!(feed(&mut d, S, &a.frame()), Gather::NotFragment);
}

#[test]
fn v4_duplicates_overlaps_and_conflicting_ends() {
    let a = udp("10.0.0.2:1000", "10.0.0.3:5001", 3000, 9);
    let f = fragments(&a, &[1480, 2960]);
    let mut d = defrag();
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Dropped(FragDrop::Duplicate));
    assert_eq!(feed(&mut d, S, &f[1]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[2]), Gather::Complete);
    assert_eq!(d.datagram().unwrap(), &a.frame()[..]);

    // 0..1480 held; 1472..2952 overlaps it: the datagram is gone.
    let a = udp("10.0.0.2:1000", "10.0.0.3:5001", 3000, 10);
    let f = fragments(&a, &[1480, 2960]);
    let g = fragments(&a, &[1472, 2952]);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(feed(&mut d, S, &g[1]), Gather::Dropped(FragDrop::Overlap));
    assert_eq!(d.occupancy(IpFamily::V4).1, 0);
    // What comes after starts a new datagram that never completes.
    assert_eq!(feed(&mut d, S, &f[1]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[2]), Gather::Held);
    assert_eq!(d.expire(S + 30 * S, 16), 1);
    assert_eq!(d.counters(IpFamily::V4).timed_out_fragments, 2);

    // Two last fragments that disagree: corrupt, the datagram is dropped.
    let a = udp("10.0.0.2:1000", "10.0.0.3:5001", 3000, 11);
    let f = fragments(&a, &[1480, 2960]);
    let short = udp("10.0.0.2:1000", "10.0.0.3:5001", 2000, 11);
    let s = fragments(&short, &[1480]);
    assert_eq!(feed(&mut d, S, &f[2]), Gather::Held);
    assert_eq!(feed(&mut d, S, &s[1]), Gather::Dropped(FragDrop::Corrupt));
    assert_eq!(d.occupancy(IpFamily::V4), (0, 0));
}

#[test]
fn v4_tiny_first_fragment_and_the_time_limit() {
    // 8 bytes: the UDP header alone.
    let a = udp("10.0.0.2:1000", "10.0.0.3:5001", 100, 12);
    let f = fragments(&a, &[8]);
    let mut d = defrag();
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(feed(&mut d, 2 * S, &f[1]), Gather::Complete);
    assert_eq!(d.datagram().unwrap(), &a.frame()[..]);
    assert_eq!(emitted(&mut d), f);
    // The timer runs from the first fragment: 30 s later the second finds no datagram.
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(feed(&mut d, 31 * S, &f[1]), Gather::Held);
    assert_eq!(d.counters(IpFamily::V4).timed_out, 1);
    assert_eq!(d.occupancy(IpFamily::V4).1, 1);
}

#[test]
fn v4_oversize_ecn_and_df() {
    let mut d = defrag();
    // Offset 65,528 with 16 bytes: 65,544 bytes of payload.
    let ip = IpOpts {
        id: 13,
        frag_offset: 65_528,
        ..IpOpts::default()
    };
    let src: IpAddr = "10.0.0.2".parse().unwrap();
    let dst: IpAddr = "10.0.0.3".parse().unwrap();
    let last = frag_frame(src, dst, proto::UDP, &[0; 16], &ip);
    let first = frag_frame(
        src,
        dst,
        proto::UDP,
        &[0; 1480],
        &IpOpts {
            id: 13,
            more_frags: true,
            ..IpOpts::default()
        },
    );
    assert_eq!(feed(&mut d, S, &last), Gather::Held);
    assert_eq!(feed(&mut d, S, &first), Gather::Held);
    let n = 65_528 / 1480;
    for i in 1..=n {
        let off = i * 1480;
        let len = (65_528 - off).min(1480);
        let f = frag_frame(
            src,
            dst,
            proto::UDP,
            &vec![0; len],
            &IpOpts {
                id: 13,
                frag_offset: off as u16,
                more_frags: true,
                ..IpOpts::default()
            },
        );
        let g = feed(&mut d, S, &f);
        if i < n {
            assert_eq!(g, Gather::Held);
        } else {
            assert_eq!(g, Gather::Dropped(FragDrop::Oversize));
        }
    }
    assert_eq!(d.occupancy(IpFamily::V4), (0, 0));

    // ECT(0) then not-ECT: dropped.
    let mut a = udp("10.0.0.2:1000", "10.0.0.3:5001", 3000, 14);
    a.ip.dont_frag = true;
    let mut f = fragments(&a, &[1480]);
    f[0][15] |= 2; // TOS: ECT(0)
    fix_v4_checksum(&mut f[0]);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[1]), Gather::Dropped(FragDrop::Ecn));
    // Both with DF: the datagram keeps DF; the bridge's fragments do not (MF and offset
    // only), and their checksums are new.
    let f = fragments(&a, &[1480]);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[1]), Gather::Complete);
    assert_eq!(d.datagram().unwrap(), &a.frame()[..]);
    let out = emitted(&mut d);
    assert_eq!(u16::from_be_bytes([out[0][20], out[0][21]]), 0x2000);
    assert_eq!(u16::from_be_bytes([out[1][20], out[1][21]]), 1480 / 8);
    for o in &out {
        wire::parse(o).expect("valid IPv4 headers");
    }
}

fn fix_v4_checksum(frame: &mut [u8]) {
    frame[24] = 0;
    frame[25] = 0;
    let c = crate::wire::checksum::checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn v4_a_queue_that_falls_too_far_behind_starts_again() {
    let mut d = defrag();
    let a = udp("10.0.0.2:1000", "10.0.0.3:5001", 3000, 100);
    let f = fragments(&a, &[1480, 2960]);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    // 65 fragments of other datagrams from the same source (ipfrag_max_dist = 64).
    for id in 0..65 {
        let b = udp("10.0.0.2:1000", "10.0.0.3:5001", 3000, 200 + id);
        assert_eq!(feed(&mut d, S, &fragments(&b, &[1480])[0]), Gather::Held);
    }
    assert_eq!(feed(&mut d, S, &f[1]), Gather::Held);
    assert_eq!(d.counters(IpFamily::V4).too_far, 1);
    // The first fragment was dropped: the datagram cannot complete without it again.
    assert_eq!(feed(&mut d, S, &f[2]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Complete);
}

#[test]
fn memory_is_bounded_by_high_thresh() {
    let limits = FragLimits {
        high_thresh: 64 * 1024,
        ..FragLimits::IPV4
    };
    let mut d = Defrag::new(limits, FragLimits::IPV6, 1);
    let mut held = 0;
    let mut refused = 0;
    for id in 0..200 {
        let b = udp("10.0.0.9:1000", "10.0.0.3:5001", 3000, id);
        match feed(&mut d, S, &fragments(&b, &[1480])[0]) {
            Gather::Held => held += 1,
            Gather::Dropped(FragDrop::NoMemory) => refused += 1,
            g => panic!("{g:?}"),
        }
        assert!(d.occupancy(IpFamily::V4).0 <= 64 * 1024 + 4096);
    }
    assert!(held > 20 && refused > 100, "{held} held, {refused} refused");
    // Once they time out, fragments are taken again.
    d.expire(40 * S, 1000);
    assert_eq!(d.occupancy(IpFamily::V4), (0, 0));
    let b = udp("10.0.0.9:1000", "10.0.0.3:5001", 3000, 999);
    assert_eq!(
        feed(&mut d, 40 * S, &fragments(&b, &[1480])[0]),
        Gather::Held
    );
}

fn udp6(n: usize, id: u32) -> Udp {
    udp("[fd00::2]:1000", "[fd00::3]:5001", n, id)
}

#[test]
fn v6_in_order_reversed_duplicate_and_atomic() {
    let a = udp6(3000, 0x1234);
    let f = fragments(&a, &[1448, 2896]);
    let mut d = defrag();
    assert_eq!(feed(&mut d, S, &f[2]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Dropped(FragDrop::Duplicate));
    assert_eq!(feed(&mut d, S, &f[1]), Gather::Complete);
    // The unfragmented datagram (the builder's flow label is the id's low 20 bits).
    assert_eq!(d.datagram().unwrap(), &a.frame()[..]);
    assert_eq!(emitted(&mut d), f);
    // An atomic fragment (offset 0, no M): reassembled at once, sent without the header.
    let mut ip = a.ip.clone();
    ip.more_frags = false;
    let l4 = a.datagram();
    let mut atomic = frag_frame(a.src.ip(), a.dst.ip(), proto::UDP, &l4, &ip);
    // The builder adds a fragment header only when fragmented: add one by hand.
    atomic = insert_v6_fragment_header(&atomic, 0, false, 0x1234);
    assert_eq!(feed(&mut d, S, &atomic), Gather::Complete);
    assert_eq!(d.datagram().unwrap(), &a.frame()[..]);
    assert_eq!(emitted(&mut d), vec![a.frame()]);
}

/// `frame` (IPv6, no extension headers) with a fragment header inserted.
fn insert_v6_fragment_header(frame: &[u8], offset: u16, more: bool, id: u32) -> Vec<u8> {
    let mut out = frame[..54].to_vec();
    let next = out[20];
    out[20] = 44;
    let plen = u16::from_be_bytes([out[18], out[19]]) + 8;
    out[18..20].copy_from_slice(&plen.to_be_bytes());
    out.extend_from_slice(&[next, 0]);
    out.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&frame[54..]);
    out
}

/// `frame` (IPv6 with a fragment header right after the fixed header) with an 8-byte
/// hop-by-hop header (PadN) before the fragment header.
fn with_hop_by_hop(frame: &[u8]) -> Vec<u8> {
    let mut out = frame[..54].to_vec();
    let next = out[20];
    out[20] = 0;
    let plen = u16::from_be_bytes([out[18], out[19]]) + 8;
    out[18..20].copy_from_slice(&plen.to_be_bytes());
    out.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    out.extend_from_slice(&frame[54..]);
    out
}

#[test]
fn v6_extension_headers_before_the_fragment_header() {
    let a = udp6(3000, 0x777);
    let f: Vec<_> = fragments(&a, &[1440, 2880])
        .iter()
        .map(|x| with_hop_by_hop(x))
        .collect();
    let mut d = defrag();
    assert_eq!(feed(&mut d, S, &f[1]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[2]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Complete);
    let whole = d.datagram().unwrap().to_vec();
    let m = wire::parse(&whole).unwrap();
    assert_eq!(
        (m.proto, m.sport, m.fragment),
        (proto::UDP, 1000, Fragment::None)
    );
    assert_eq!(whole.len(), a.frame().len() + 8);
    assert!(wire::l4_checksum_ok(&whole, &m));
    assert_eq!(
        emitted(&mut d),
        f,
        "the fragment header goes back after hop-by-hop"
    );
}

#[test]
fn v6_what_the_kernel_passes_on_unreassembled() {
    let a = udp6(3000, 0x99);
    let mut d = defrag();
    // A first fragment of 4 bytes: the UDP header is not whole (RFC 8200 §4.5).
    let f = fragments(&a, &[8, 16]);
    let mut ip = a.ip.clone();
    ip.more_frags = true;
    let cut = frag_frame(a.src.ip(), a.dst.ip(), proto::UDP, &a.datagram()[..4], &ip);
    assert_eq!(feed(&mut d, S, &cut), Gather::Pass);
    // A middle fragment whose length is not a multiple of 8: the datagram is dropped and
    // the frame goes on.
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    let mut ip = a.ip.clone();
    ip.more_frags = true;
    ip.frag_offset = 8;
    let odd = frag_frame(
        a.src.ip(),
        a.dst.ip(),
        proto::UDP,
        &a.datagram()[8..13],
        &ip,
    );
    assert_eq!(feed(&mut d, S, &odd), Gather::Pass);
    assert_eq!(d.occupancy(IpFamily::V6), (0, 0));
    // A second, different last fragment drops only itself.
    assert_eq!(feed(&mut d, S, &f[2]), Gather::Held);
    let short = fragments(&udp6(2000, 0x99), &[16]);
    assert_eq!(
        feed(&mut d, S, &short[1]),
        Gather::Dropped(FragDrop::Corrupt)
    );
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[1]), Gather::Complete);
    assert_eq!(d.datagram().unwrap(), &a.frame()[..]);
    // Overlap: gone.
    let g = fragments(&a, &[8, 24]);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(feed(&mut d, S, &f[1]), Gather::Held);
    assert_eq!(feed(&mut d, S, &g[1]), Gather::Dropped(FragDrop::Overlap));
    assert_eq!(d.occupancy(IpFamily::V6), (0, 0));
}

proptest! {
    /// Any sequence of fragments: no panic, memory within the limit, and everything given
    /// back once the time is up.
    #[test]
    fn arbitrary_fragments_keep_the_books(
        frags in prop::collection::vec(
            (any::<bool>(), 0u32..4, 0u16..8191, 1usize..1600, any::<bool>(), any::<u8>()),
            1..200,
        )
    ) {
        let limits = FragLimits { high_thresh: 256 * 1024, ..FragLimits::IPV4 };
        let mut d = Defrag::new(limits, FragLimits { high_thresh: 256 * 1024, ..FragLimits::IPV6 }, 1);
        for (i, (v6, id, off8, len, more, tos)) in frags.into_iter().enumerate() {
            let (src, dst): (IpAddr, IpAddr) = if v6 {
                ("fd00::2".parse().unwrap(), "fd00::3".parse().unwrap())
            } else {
                ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap())
            };
            let ip = IpOpts { id, frag_offset: off8 * 8, more_frags: more, ..IpOpts::default() };
            let mut f = frag_frame(src, dst, proto::UDP, &vec![tos; len], &ip);
            if !v6 {
                f[15] = tos & 3;
                fix_v4_checksum(&mut f);
            }
            if v6 && off8 == 0 && !more {
                continue; // the builder writes no fragment header for these
            }
            let now = S + i as u64 * S / 10;
            if feed(&mut d, now, &f) == Gather::Complete {
                let whole = d.datagram().unwrap().to_vec();
                prop_assert!(wire::parse(&whole).is_ok());
                let mut n = 0;
                d.each_fragment(|_, x| { n += 1; assert!(wire::parse(x).is_ok()); });
                prop_assert!(n >= 1);
            }
            for fam in [IpFamily::V4, IpFamily::V6] {
                prop_assert!(d.occupancy(fam).0 <= 256 * 1024 + MAX_DATAGRAM_FRAME + 4096);
            }
        }
        d.expire(u64::MAX / 2, usize::MAX);
        prop_assert_eq!(d.occupancy(IpFamily::V4), (0, 0));
        prop_assert_eq!(d.occupancy(IpFamily::V6), (0, 0));
    }
}

#[test]
fn the_largest_datagrams_reassemble_and_parse() {
    // IPv4: 65,535 bytes in all (20 + 8 + 65,507); IPv6: 65,535 bytes of payload.
    for (u, step) in [
        (udp("10.0.0.2:1000", "10.0.0.3:5001", 65_507, 21), 1480),
        (udp6(65_527, 22), 1448),
    ] {
        let l4 = u.datagram().len();
        let cuts: Vec<usize> = (step..l4).step_by(step).collect();
        let f = fragments(&u, &cuts);
        let mut d = defrag();
        let (last, held) = f.split_last().unwrap();
        for x in held {
            assert_eq!(feed(&mut d, S, x), Gather::Held);
        }
        assert_eq!(feed(&mut d, S, last), Gather::Complete);
        let whole = d.datagram().unwrap().to_vec();
        assert_eq!(whole, u.frame());
        let m = wire::parse(&whole).unwrap();
        assert_eq!(usize::from(m.l4_len), l4);
        assert_eq!(m.l4_invalid, None);
        assert!(wire::l4_checksum_ok(&whole, &m));
        assert_eq!(emitted(&mut d), f);
    }
}

#[test]
fn every_fragment_of_a_datagram_steers_alike() {
    for u in [
        udp("10.0.0.2:1000", "10.0.0.3:5001", 3000, 31),
        udp6(3000, 32),
    ] {
        let f = fragments(&u, &[1440, 2880]);
        let hashes: Vec<_> = f
            .iter()
            .map(|x| steer_hash(x, &wire::parse(x).unwrap(), 0))
            .collect();
        assert!(hashes[0].is_some());
        assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
        // Another datagram (id) steers independently; a whole packet by its flow.
        let mut other = u.clone();
        other.ip.id += 1;
        let g = fragments(&other, &[1440]);
        assert_ne!(
            steer_hash(&g[0], &wire::parse(&g[0]).unwrap(), 0),
            hashes[0]
        );
        let whole = u.frame();
        assert_eq!(steer_hash(&whole, &wire::parse(&whole).unwrap(), 0), None);
    }
    // IPv6: the ingress port is part of the key (frag_v6_compare_key.iif).
    let f = fragments(&udp6(3000, 33), &[1440]);
    let m = wire::parse(&f[1]).unwrap();
    assert_ne!(steer_hash(&f[1], &m, 0), steer_hash(&f[1], &m, 1));
    // With a hop-by-hop header before the fragment header.
    let h = with_hop_by_hop(&f[1]);
    assert_eq!(
        steer_hash(&h, &wire::parse(&h).unwrap(), 0),
        steer_hash(&f[1], &m, 0)
    );
}

#[test]
fn a_reload_changes_the_limits_within_what_was_allocated() {
    let mut d = Defrag::new(FragLimits::IPV4, FragLimits::IPV6, 2);
    let a = udp("10.0.0.2:1000", "10.0.0.3:5001", 3000, 41);
    let f = fragments(&a, &[1480]);
    // high_thresh 0: nothing is queued.
    let off = FragLimits {
        high_thresh: 0,
        ..FragLimits::IPV4
    };
    d.set_limits(off, FragLimits::IPV6);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Dropped(FragDrop::NoMemory));
    // Back to the default (2 MiB of it for each of two workers), and a shorter time.
    let short = FragLimits {
        time: 2 * S,
        ..FragLimits::IPV4
    };
    d.set_limits(short, FragLimits::IPV6);
    assert_eq!(feed(&mut d, S, &f[0]), Gather::Held);
    assert_eq!(
        feed(&mut d, 4 * S, &f[1]),
        Gather::Held,
        "the first timed out"
    );
    assert_eq!(d.counters(IpFamily::V4).timed_out, 1);
}

#[test]
fn v6_headers_cut_by_the_fragment_header_go_back_where_they_were() {
    // IPv6 | fragment (M, offset 0) | 16 bytes of a 24-byte destination-options header
    // (next: no next header), then a last fragment with its other 8 bytes and 8 more. Not
    // truncated for RFC 8200 §4.5 (the chain ends in "no next header"), so it is queued; the
    // reassembled datagram's destination options reach past the first fragment.
    let src: IpAddr = "fd00::2".parse().unwrap();
    let dst: IpAddr = "fd00::3".parse().unwrap();
    let body: Vec<u8> = [vec![59, 2, 1, 20], vec![0; 20], vec![9; 8]].concat();
    let ip = |offset: u16, more: bool| IpOpts {
        id: 0x51,
        frag_offset: offset,
        more_frags: more,
        ..IpOpts::default()
    };
    let first = frag_frame(src, dst, 60, &body[..16], &ip(0, true));
    let last = frag_frame(src, dst, 60, &body[16..], &ip(16, false));
    let mut d = defrag();
    assert_eq!(feed(&mut d, S, &first), Gather::Held);
    assert_eq!(feed(&mut d, S, &last), Gather::Complete);
    assert_eq!(emitted(&mut d), vec![first, last]);
}

/// An IPv6 frame from fd00::2 to fd00::3 with extension headers `before` the fragment
/// header (type, length in 8-byte units), the fragment header (next header `next`,
/// `offset8`, M, id), then `data`.
fn v6_chain(
    before: &[(u8, u8)],
    next: u8,
    offset8: u16,
    more: bool,
    id: u32,
    data: &[u8],
) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut types: Vec<u8> = before.iter().map(|&(t, _)| t).collect();
    types.push(44);
    for (i, &(_, len)) in before.iter().enumerate() {
        ext.push(types[i + 1]);
        ext.push(len);
        ext.extend(std::iter::repeat_n(0, usize::from(len) * 8 + 6));
    }
    ext.extend_from_slice(&[next, 0]);
    ext.extend_from_slice(&(offset8 << 3 | u16::from(more)).to_be_bytes());
    ext.extend_from_slice(&id.to_be_bytes());
    ext.extend_from_slice(data);
    let mut f = vec![
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
    ];
    f.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    f.push(types[0]);
    f.push(64);
    f.extend_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&"fd00::3".parse::<std::net::Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&ext);
    f
}

proptest! {
    /// IPv6 fragments behind and in front of chains of extension headers: no panic, and
    /// whatever is sent for a complete datagram parses.
    #[test]
    fn v6_extension_header_chains_never_panic(
        frags in prop::collection::vec(
            (
                prop::collection::vec((prop::sample::select(vec![0u8, 43, 60, 51]), 0u8..3), 0..3),
                prop::sample::select(vec![17u8, 6, 58, 59, 60, 43, 0]),
                0u16..40,
                any::<bool>(),
                0u32..3,
                prop::collection::vec(any::<u8>(), 0..200),
            ),
            1..60,
        )
    ) {
        let mut d = defrag();
        for (i, (before, next, off8, more, id, data)) in frags.into_iter().enumerate() {
            let f = v6_chain(&before, next, off8, more, id, &data);
            let Ok(m) = wire::parse(&f) else { continue };
            if d.gather(S + i as u64, &f, &m, 0, 0) == Gather::Complete {
                prop_assert!(wire::parse(d.datagram().unwrap()).is_ok());
                d.each_fragment(|_, x| assert!(wire::parse(x).is_ok(), "{x:?}"));
            }
        }
        d.expire(u64::MAX / 2, usize::MAX);
        prop_assert_eq!(d.occupancy(IpFamily::V6), (0, 0));
    }
}
