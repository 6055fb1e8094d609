//! The Internet checksum (RFC 1071): a one's-complement sum of 16-bit big-endian words.
//!
//! Summing big-endian 64-bit words into a wider accumulator and folding gives the same result
//! as summing 16-bit words (RFC 1071 §2(B): byte-order independence, parallel summation), with
//! a quarter of the additions and the carries left to the end.

/// The one's-complement partial sum of `data`, unfolded: at most 34 bits, zero only when
/// every byte is. Sums can be added together before [`fold`]ing as long as every part but the
/// last has even length.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    // 64-bit big-endian words added with end-around carry (one's-complement addition modulo
    // 2^64 - 1, which 0xffff divides, so the residue of the 16-bit sum is kept; a sum of
    // non-zero words never wraps to zero), then folded to 33 bits so callers can add more.
    let mut acc: u64 = 0;
    let mut rest = data;
    while let Some((w, tail)) = rest.split_first_chunk::<8>() {
        let (s, carry) = acc.overflowing_add(u64::from_be_bytes(*w));
        // On a carry s <= 2^64 - 2: adding it back cannot overflow.
        acc = s + u64::from(carry);
        rest = tail;
    }
    let mut acc = (acc & 0xffff_ffff) + (acc >> 32);
    if let Some((w, tail)) = rest.split_first_chunk::<4>() {
        acc += u64::from(u32::from_be_bytes(*w));
        rest = tail;
    }
    if let Some((w, tail)) = rest.split_first_chunk::<2>() {
        acc += u64::from(u16::from_be_bytes(*w));
        rest = tail;
    }
    // An odd trailing byte is padded with a zero on the right (RFC 1071).
    if let &[a] = rest {
        acc += u64::from(a) << 8;
    }
    acc
}

/// The sum of a 20-byte header (IPv4 without options, TCP without options).
#[inline]
pub fn sum20(h: &[u8; 20]) -> u64 {
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    w(0) + w(4) + w(8) + w(12) + w(16)
}

/// Folds a partial sum to 16 bits with end-around carry.
#[inline]
pub fn fold(s: u64) -> u16 {
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum field value for `data` (whose checksum field is zero): `!fold(sum)`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Whether a sum that includes the transmitted checksum field verifies (folds to all ones).
#[inline]
#[expect(
    clippy::manual_is_multiple_of,
    reason = "u64::is_multiple_of needs Rust 1.87; the workspace MSRV is 1.82"
)]
pub fn verifies(s: u64) -> bool {
    // fold(s) == 0xffff, i.e. s is a non-zero multiple of 0xffff (2^16 ≡ 1 mod 0xffff, so
    // folding preserves the residue): a multiply instead of five folding steps.
    s != 0 && s % 0xffff == 0
}

/// The pseudo-header sum for IPv4 (RFC 768 / RFC 793): addresses, protocol, L4 length.
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u32) -> u64 {
    u64::from(u32::from_be_bytes(src))
        + u64::from(u32::from_be_bytes(dst))
        + u64::from(proto)
        + u64::from(len)
}

/// The pseudo-header sum for IPv6 (RFC 8200 §8.1): addresses, upper-layer length, next header.
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, len: u32) -> u64 {
    sum(src) + sum(dst) + u64::from(proto) + u64::from(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the textbook 16-bit word loop.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            s += u32::from(w);
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn matches_naive_on_all_lengths() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(167) ^ 0x5a) as u8)
            .collect();
        for len in 0..data.len() {
            assert_eq!(checksum(&data[..len]), naive(&data[..len]), "len {len}");
        }
        let ones = [0xffu8; 1500];
        assert_eq!(checksum(&ones), naive(&ones));
    }

    #[test]
    fn verifies_matches_fold() {
        for s in (0..300_000u64).chain([u64::MAX, u64::MAX - 1, 0xffff << 40, 0x1_0000_fffe]) {
            assert_eq!(verifies(s), fold(s) == 0xffff, "{s:#x}");
        }
    }

    #[test]
    fn sum20_matches_sum() {
        let h: [u8; 20] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xc3);
        assert_eq!(fold(sum20(&h)), fold(sum(&h)));
    }

    #[test]
    fn ipv4_header_verifies() {
        // A real IPv4 header (wikipedia's example), checksum b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verifies(sum(&h)));
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xb861);
    }
}
