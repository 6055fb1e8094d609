//! Memory hints for the packet path's tables: prefetch a cache line, ask for huge pages.
//! Both are advice that never changes what a program computes, but both are `unsafe` calls,
//! and this module is the one place in the engine where `unsafe` is allowed (the workspace
//! denies it; the `expect` below lifts that here only); the conntrack table calls these safe
//! wrappers.

#![expect(
    unsafe_code,
    reason = "a prefetch intrinsic and madvise(2) have no safe form; both are advice only"
)]

/// Hint the CPU to fetch the cache line holding `p` (never faults, no effect on results).
#[inline(always)]
pub fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of the x86_64 baseline; a prefetch of any address is harmless.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = p;
    }
}

/// Ask for transparent huge pages over `v`'s buffer (before it is first written). Advice
/// only: where it fails or THP is off, nothing changes but speed.
pub fn advise_huge<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const MADV_HUGEPAGE: i32 = 14;
        const PAGE: usize = 4096;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes < 2 << 20 {
            return;
        }
        let start = v.as_ptr() as usize;
        let lo = start.next_multiple_of(PAGE);
        let hi = (start + bytes) & !(PAGE - 1);
        if hi <= lo {
            return;
        }
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        // SAFETY: [lo, hi) lies inside `v`'s allocation, and MADV_HUGEPAGE never changes the
        // memory's contents or validity.
        unsafe {
            madvise(
                std::ptr::with_exposed_provenance_mut(lo),
                hi - lo,
                MADV_HUGEPAGE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = v;
    }
}
