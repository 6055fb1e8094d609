//! The bytes of held fragments: a preallocated arena of fixed-size chunks, a fragment's frame
//! in a chain of them. Nothing is allocated after [`Pool::new`]; a fragment that does not fit
//! in the free chunks is refused (the caller counts it as a memory drop, as the kernel's
//! `inet_frag_find` refuses a fragment above `high_thresh`).

/// Bytes per chunk. A 1,500-byte fragment takes one chunk, as an skb's truesize of about
/// 2 KiB does in the kernel's accounting.
pub const CHUNK: usize = 2048;

const NIL: u32 = u32::MAX;

#[derive(Debug)]
pub struct Pool {
    bytes: Box<[u8]>,
    /// The next chunk of a chain, or of the free list.
    next: Box<[u32]>,
    free: u32,
    free_count: usize,
}

impl Pool {
    /// A pool of `chunks` chunks, every page touched now (not on the packet path).
    pub fn new(chunks: usize) -> Pool {
        let chunks = chunks.clamp(1, NIL as usize - 1);
        let next: Box<[u32]> = (0..chunks)
            .map(|i| if i + 1 == chunks { NIL } else { i as u32 + 1 })
            .collect();
        Pool {
            bytes: touched(chunks * CHUNK),
            next,
            free: 0,
            free_count: chunks,
        }
    }

    pub fn chunks(&self) -> usize {
        self.next.len()
    }

    pub fn free_chunks(&self) -> usize {
        self.free_count
    }

    /// Chunks `len` bytes take.
    pub fn chunks_for(len: usize) -> usize {
        len.div_ceil(CHUNK).max(1)
    }

    /// Store `data`; the chain's first chunk, or `None` when the free chunks do not hold it.
    pub fn store(&mut self, data: &[u8]) -> Option<u32> {
        let n = Self::chunks_for(data.len());
        if n > self.free_count {
            return None;
        }
        let head = self.free;
        let mut at = head;
        for (i, part) in data.chunks(CHUNK).enumerate() {
            let start = at as usize * CHUNK;
            self.bytes[start..start + part.len()].copy_from_slice(part);
            if i + 1 == n {
                break;
            }
            at = self.next[at as usize];
        }
        // `at` is the chain's last chunk: cut the free list after it.
        self.free = self.next[at as usize];
        self.next[at as usize] = NIL;
        self.free_count -= n;
        Some(head)
    }

    /// Give a chain back.
    pub fn release(&mut self, head: u32) {
        let mut at = head;
        let mut n = 1;
        while self.next[at as usize] != NIL {
            at = self.next[at as usize];
            n += 1;
        }
        self.next[at as usize] = self.free;
        self.free = head;
        self.free_count += n;
    }

    /// Copy bytes `from..from + dst.len()` of the chain at `head` into `dst` (the caller
    /// stays within what it stored).
    pub fn read(&self, head: u32, from: usize, dst: &mut [u8]) {
        let mut at = head;
        let mut skip = from;
        while skip >= CHUNK {
            at = self.next[at as usize];
            skip -= CHUNK;
        }
        let mut done = 0;
        while done < dst.len() {
            let take = (CHUNK - skip).min(dst.len() - done);
            let start = at as usize * CHUNK + skip;
            dst[done..done + take].copy_from_slice(&self.bytes[start..start + take]);
            done += take;
            skip = 0;
            if done < dst.len() {
                at = self.next[at as usize];
            }
        }
    }
}

/// `len` zero bytes whose pages are all faulted in now: a zeroed allocation is only mapped
/// on first write, which would otherwise be the packet path's (an opaque value, so the
/// stores are not elided as writes of zero to zeroed memory).
pub fn touched(len: usize) -> Box<[u8]> {
    let mut b = vec![0u8; len].into_boxed_slice();
    for i in (0..len).step_by(4096) {
        b[i] = std::hint::black_box(0);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_store_read_and_come_back() {
        let mut p = Pool::new(4);
        let a: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let ha = p.store(&a).unwrap();
        assert_eq!(p.free_chunks(), 1);
        assert!(
            p.store(&a[..3000]).is_none(),
            "two chunks do not fit in one"
        );
        let hb = p.store(&[7; 10]).unwrap();
        let mut out = vec![0u8; 3000];
        p.read(ha, 1500, &mut out);
        assert_eq!(out, a[1500..4500]);
        let mut b = [0u8; 10];
        p.read(hb, 0, &mut b);
        assert_eq!(b, [7; 10]);
        p.release(ha);
        p.release(hb);
        assert_eq!(p.free_chunks(), 4);
        let hc = p.store(&vec![1; 4 * CHUNK]).unwrap();
        assert_eq!(p.free_chunks(), 0);
        p.release(hc);
        assert_eq!(p.free_chunks(), 4);
    }
}
