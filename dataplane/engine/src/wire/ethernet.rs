//! Ethernet II framing with up to two VLAN tags (802.1Q `0x8100`, 802.1ad `0x88a8`).

use crate::reason::L3Error;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// Destination MAC, source MAC, EtherType.
pub const HEADER_LEN: usize = 14;
/// Tag control information + the EtherType that follows it.
pub const TAG_LEN: usize = 4;
/// How many stacked tags we look through (QinQ); a third tag is left as the EtherType.
pub const MAX_TAGS: usize = 2;

/// The Ethernet layer of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// EtherType after the tags.
    pub ethertype: u16,
    /// Offset of the L3 header.
    pub l3_offset: usize,
    /// The outer tag's VLAN id.
    pub vlan: Option<u16>,
}

/// Reads the Ethernet header and any VLAN tags.
#[inline]
pub fn parse(frame: &[u8]) -> Result<EthernetRepr, L3Error> {
    let Some(h) = frame.first_chunk::<HEADER_LEN>() else {
        return Err(L3Error::Truncated);
    };
    let mut ethertype = u16::from_be_bytes([h[12], h[13]]);
    let mut l3_offset = HEADER_LEN;
    let mut vlan = None;
    for _ in 0..MAX_TAGS {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        let Some(&[tci_hi, tci_lo, ty_hi, ty_lo]) = frame.get(l3_offset..l3_offset + TAG_LEN)
        else {
            return Err(L3Error::Truncated);
        };
        if vlan.is_none() {
            vlan = Some(u16::from_be_bytes([tci_hi, tci_lo]) & 0x0fff);
        }
        ethertype = u16::from_be_bytes([ty_hi, ty_lo]);
        l3_offset += TAG_LEN;
    }
    Ok(EthernetRepr {
        ethertype,
        l3_offset,
        vlan,
    })
}
