//! FTP expectations to and from sync messages (EXP_NEW, EXP_DEL), as conntrackd 1.4.7 with
//! `ExpectationSync` writes them (`src/build.c` `exp2msg`): the master's original tuple, the
//! expected tuple, its mask, the timeout, the flags, the class and the helper's name.
//!
//! An expectation of the FTP helper, as the kernel's `nf_conntrack_ftp` makes it: the data
//! connection comes from the other side's address (exact), to the announcing side's address
//! and the announced port (exact), from any source port: mask (all ones, all ones), protocol
//! TCP, ports (0, 0xffff); flags 0, class 0, helper "ftp". Statewall takes exactly those;
//! anything else (NAT, another helper, another mask or protocol, a permanent or userspace
//! expectation) is refused with the reason.

use crate::conntrack::expect::Expectation;
use crate::flow::FlowKey;
use crate::packet::{v4_mapped, IpFamily};
use crate::wire::proto;

use super::wire::{be16, be32, Addrs};

/// Expectation attribute types (`enum nta_exp_attr`).
pub mod attr {
    pub const MASTER_IPV4: u16 = 0;
    pub const MASTER_IPV6: u16 = 1;
    pub const MASTER_L4PROTO: u16 = 2;
    pub const MASTER_PORT: u16 = 3;
    pub const EXPECT_IPV4: u16 = 4;
    pub const EXPECT_IPV6: u16 = 5;
    pub const EXPECT_L4PROTO: u16 = 6;
    pub const EXPECT_PORT: u16 = 7;
    pub const MASK_IPV4: u16 = 8;
    pub const MASK_IPV6: u16 = 9;
    pub const MASK_L4PROTO: u16 = 10;
    pub const MASK_PORT: u16 = 11;
    pub const TIMEOUT: u16 = 12;
    pub const FLAGS: u16 = 13;
    pub const CLASS: u16 = 14;
    pub const NAT_IPV4: u16 = 15;
    pub const NAT_PORT: u16 = 16;
    pub const NAT_L4PROTO: u16 = 17;
    pub const NAT_DIR: u16 = 18;
    pub const HELPER_NAME: u16 = 19;
    pub const FN: u16 = 20;
}

const NS: u64 = 1_000_000_000;

/// An expectation message's attributes: `(type, payload)`, in order.
pub type ExpAttrs = Vec<(u16, Vec<u8>)>;

fn addrs(family: IpFamily, s: &[u8; 16], d: &[u8; 16]) -> Vec<u8> {
    match family {
        IpFamily::V4 => [&s[12..], &d[12..]].concat(),
        IpFamily::V6 => [&s[..], &d[..]].concat(),
    }
}

/// The attributes conntrackd writes for `x` at `now`, in its order (`(type, payload)`).
pub fn attrs_of(x: &Expectation, now: u64) -> ExpAttrs {
    let v6 = x.family == IpFamily::V6;
    let (ip, m) = (u16::from(v6), &x.master);
    let ones = [0xff; 16];
    let ports = |s: u16, d: u16| [s.to_be_bytes(), d.to_be_bytes()].concat();
    let timeout = u32::try_from(x.expires.saturating_sub(now) / NS).unwrap_or(u32::MAX);
    vec![
        (attr::MASTER_IPV4 + ip, addrs(m.family, &m.src, &m.dst)),
        (attr::MASTER_L4PROTO, vec![m.proto]),
        (attr::MASTER_PORT, ports(m.sport, m.dport)),
        (attr::EXPECT_IPV4 + ip, addrs(x.family, &x.src, &x.dst)),
        (attr::EXPECT_L4PROTO, vec![x.proto]),
        (attr::EXPECT_PORT, ports(0, x.dport)),
        (attr::MASK_IPV4 + ip, addrs(x.family, &ones, &ones)),
        (attr::MASK_L4PROTO, vec![x.proto]),
        (attr::MASK_PORT, ports(0, 0xffff)),
        (attr::TIMEOUT, timeout.to_be_bytes().to_vec()),
        (attr::FLAGS, 0u32.to_be_bytes().to_vec()),
        (attr::CLASS, 0u32.to_be_bytes().to_vec()),
        (attr::HELPER_NAME, b"ftp\0".to_vec()),
    ]
}

fn pair(p: &[u8]) -> (IpFamily, [u8; 16], [u8; 16]) {
    match super::wire::addrs(p) {
        Addrs::V4(s, d) => (IpFamily::V4, v4_mapped(s), v4_mapped(d)),
        Addrs::V6(s, d) => (IpFamily::V6, s, d),
    }
}

/// The expectation a message's attributes make at `now` (its timeout from now; the mark
/// is the master's, set by whoever adds it), or why Statewall cannot hold it.
pub fn expectation_of(attrs: &[(u16, Vec<u8>)], now: u64) -> Result<Expectation, String> {
    let get = |t: u16| {
        attrs
            .iter()
            .find(|(a, _)| *a == t)
            .map(|(_, p)| p.as_slice())
    };
    let either = |v4: u16| get(v4).or_else(|| get(v4 + 1));
    if [
        attr::NAT_IPV4,
        attr::NAT_PORT,
        attr::NAT_L4PROTO,
        attr::NAT_DIR,
    ]
    .iter()
    .any(|t| get(*t).is_some())
    {
        return Err("a NAT'd expectation: Statewall does no NAT".into());
    }
    if let Some(h) = get(attr::HELPER_NAME) {
        let name = h.split(|b| *b == 0).next().unwrap_or_default();
        if name != b"ftp" {
            return Err(format!(
                "an expectation of the helper `{}`: Statewall has the FTP helper only",
                String::from_utf8_lossy(name)
            ));
        }
    }
    if let Some(f) = get(attr::FN) {
        let name = f.split(|b| *b == 0).next().unwrap_or_default();
        return Err(format!(
            "an expectation with the function `{}`",
            String::from_utf8_lossy(name)
        ));
    }
    if get(attr::FLAGS).is_some_and(|f| be32(f) != 0) {
        return Err("a permanent, inactive or userspace expectation (flags set)".into());
    }
    let (mf, ms, md) = pair(either(attr::MASTER_IPV4).ok_or("no master tuple")?);
    let (xf, xs, xd) = pair(either(attr::EXPECT_IPV4).ok_or("no expected tuple")?);
    let mp = get(attr::MASTER_L4PROTO).ok_or("no master protocol")?[0];
    let xp = get(attr::EXPECT_L4PROTO).ok_or("no expected protocol")?[0];
    if mp != proto::TCP || xp != proto::TCP || mf != xf {
        return Err("not an FTP expectation: a TCP data connection of a TCP master".into());
    }
    let mport = get(attr::MASTER_PORT).ok_or("no master ports")?;
    let xport = get(attr::EXPECT_PORT).ok_or("no expected ports")?;
    let (_, ms_all, md_all) = pair(either(attr::MASK_IPV4).ok_or("no mask")?);
    let mask_ports = get(attr::MASK_PORT).ok_or("no mask ports")?;
    if ms_all.iter().chain(md_all.iter()).any(|b| *b != 0xff)
        && !(mf == IpFamily::V4
            && ms_all[12..]
                .iter()
                .chain(md_all[12..].iter())
                .all(|b| *b == 0xff))
    {
        return Err("a mask that is not exact on both addresses".into());
    }
    if (be16(mask_ports), be16(&mask_ports[2..])) != (0, 0xffff) {
        return Err("a mask other than any source port to one destination port".into());
    }
    let t = be32(get(attr::TIMEOUT).ok_or("no timeout")?);
    let master = FlowKey::new(mf, ms, md, mp, be16(mport), be16(&mport[2..]));
    Ok(Expectation {
        family: xf,
        src: xs,
        dst: xd,
        proto: xp,
        dport: be16(&xport[2..]),
        expires: now.saturating_add(u64::from(t) * NS),
        master,
        mark: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::wire::{decode, kind, Message, Writer};

    fn ftp() -> Expectation {
        let c = v4_mapped([10, 10, 0, 2]);
        let s = v4_mapped([10, 10, 0, 3]);
        Expectation {
            family: IpFamily::V4,
            src: s,
            dst: c,
            proto: proto::TCP,
            dport: 50000,
            expires: 300 * NS,
            master: FlowKey::new(IpFamily::V4, c, s, proto::TCP, 40000, 21),
            mark: 0,
        }
    }

    #[test]
    fn an_ftp_expectation_goes_out_as_conntrackd_writes_it_and_comes_back() {
        let x = ftp();
        let mut w = Writer::default();
        w.exp(kind::EXP_NEW, 9, &attrs_of(&x, 0));
        let m = decode(&w.buf);
        let [Ok(Message::Exp(h, a))] = m.as_slice() else {
            panic!("{m:?}");
        };
        assert_eq!((h.kind, h.seq), (kind::EXP_NEW, 9));
        // Master, expected tuple, mask: groups as conntrackd copies them (network order).
        assert_eq!(a[0], (attr::MASTER_IPV4, vec![10, 10, 0, 2, 10, 10, 0, 3]));
        assert_eq!(a[2], (attr::MASTER_PORT, vec![0x9c, 0x40, 0, 21]));
        assert_eq!(a[5], (attr::EXPECT_PORT, vec![0, 0, 0xc3, 0x50]));
        assert_eq!(a[8], (attr::MASK_PORT, vec![0, 0, 0xff, 0xff]));
        let back = expectation_of(a, 0).unwrap();
        assert_eq!(back, x);
    }

    #[test]
    fn what_is_not_an_ftp_expectation_is_refused() {
        let good = attrs_of(&ftp(), 0);
        let refused = |f: &dyn Fn(&mut ExpAttrs), why: &str| {
            let mut a = good.clone();
            f(&mut a);
            let e = expectation_of(&a, 0).unwrap_err();
            assert!(e.contains(why), "{e}");
        };
        refused(&|a| a.push((attr::NAT_DIR, vec![0; 4])), "NAT");
        refused(&|a| a[12].1 = b"sip\0".to_vec(), "helper `sip`");
        refused(&|a| a[10].1 = 1u32.to_be_bytes().to_vec(), "permanent");
        refused(
            &|a| a[8].1 = vec![0xff, 0xff, 0xff, 0xff],
            "any source port",
        );
        refused(&|a| a[4].1 = vec![17], "TCP data connection");
        refused(&|a| a.retain(|(t, _)| *t != attr::TIMEOUT), "no timeout");
    }
}
