//! The process's allocator: mimalloc, asked for a plain block whenever a plain block is aligned
//! enough.
//!
//! A batch allocates small JSON maps and strings for every request from two threads at once;
//! when it was chosen, mimalloc's per-thread free lists ran the inbound benchmark 20% faster than
//! glibc's malloc (bench/batch.sh, concurrency 64: median 20,300 against 16,600 requests/s, on
//! the client of that time), for about 10 MiB more resident memory.
//!
//! The `mimalloc` crate's allocator asks `mi_malloc_aligned` for every allocation, even a byte
//! buffer. mimalloc 3 checks the block it would get before taking it and, when that page has no
//! free block, sends sizes whose block is not a power of two (48, 80, 96 bytes...) down its
//! over-allocating path: 53 instructions an allocation on average in an inbound run, 424
//! allocations a run. Its plain `mi_malloc` gives blocks of 8 bytes or of a multiple of 16,
//! laid from a 16-byte aligned start, so a block for a size that is a multiple of an alignment
//! of at most 16 is aligned to it. Anything else still goes the aligned way. The test below
//! asks for both kinds, at every alignment up to 16 and beyond.

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned,
};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc, plain where that is aligned enough.
pub struct Mimalloc;

/// The largest alignment a plain mimalloc block is sure to have (`MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGN: usize = 16;

/// Whether a plain block of `size` bytes is aligned to `align`.
fn plain(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && size.is_multiple_of(align)
}

// SAFETY: every pointer comes from mimalloc and goes back to it; each request is either a plain
// one whose block is aligned as asked (see `plain`) or mimalloc's aligned call.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation calls take any size and alignment.
        unsafe {
            match plain(layout.size(), layout.align()) {
                true => mi_malloc(layout.size()),
                false => mi_malloc_aligned(layout.size(), layout.align()),
            }
        }
        .cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            match plain(layout.size(), layout.align()) {
                true => mi_zalloc(layout.size()),
                false => mi_zalloc_aligned(layout.size(), layout.align()),
            }
        }
        .cast()
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from mimalloc; the new block is aligned as `layout` asks, by the
        // same rule as `alloc`.
        unsafe {
            match plain(new_size, layout.align()) {
                true => mi_realloc(ptr.cast(), new_size),
                false => mi_realloc_aligned(ptr.cast(), new_size, layout.align()),
            }
        }
        .cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_is_aligned_as_asked() {
        let a = Mimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            // Sizes stepping by 8 at most, so that at alignment 16 they take the plain way and
            // the aligned way in turn; each asked for 4 times over, with everything held, so
            // blocks come from inside pages, not only their first.
            let mut held = Vec::new();
            let step = align.min(8);
            let larger = [3000, 4096, 10_000, 65_536, 100_000, 1 << 20];
            let sizes = (step..=2048).step_by(step).chain(larger);
            for size in sizes.flat_map(|size| [size; 4]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: the layout's size is not zero; each block is freed with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(
                        !p.is_null() && (p as usize).is_multiple_of(align),
                        "size {size}, align {align}"
                    );
                    let z = a.alloc_zeroed(layout);
                    assert!(
                        (z as usize).is_multiple_of(align),
                        "zeroed: size {size}, align {align}"
                    );
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0));
                    let bigger = a.realloc(p, layout, size * 3);
                    assert!(
                        (bigger as usize).is_multiple_of(align),
                        "realloc: size {size}, align {align}"
                    );
                    held.push((bigger, Layout::from_size_align(size * 3, align).unwrap()));
                    held.push((z, layout));
                }
            }
            for (p, layout) in held {
                // SAFETY: allocated above with this layout.
                unsafe { a.dealloc(p, layout) }
            }
        }
    }
}
