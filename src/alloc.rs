//! The server's memory allocator: mimalloc for everything but very large blocks, which go to
//! the system allocator.
//!
//! A request allocates and frees many small buffers on several threads; glibc's malloc spent
//! about a fifth of the server's CPU on them under the escrow benchmark, mimalloc far less.
//! But mimalloc keeps freed memory in its arenas for reuse, and Argon2's 19 MiB blocks would
//! then stay resident after a burst of sign-ups (measured: 80 MiB held, against 26 MiB with
//! glibc). So a block of `LARGE` bytes or more is taken from the system allocator, which
//! `accounts::passwords` tells to map such blocks on their own and unmap them when freed.

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks at least this large come from (and go back to) the system allocator.
pub const LARGE: usize = 4 * 1024 * 1024;

pub struct Allocator;

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE
}

// SAFETY: every block is freed, and resized, by the allocator that made it: the choice
// depends only on the block's size, which Rust passes back with every call.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees about `layout` are passed on unchanged.
        unsafe { if is_large(&layout) { System.alloc(layout) } else { MiMalloc.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe { if is_large(&layout) { System.alloc_zeroed(layout) } else { MiMalloc.alloc_zeroed(layout) } }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the allocator `layout`'s size selects (see `alloc`).
        unsafe { if is_large(&layout) { System.dealloc(ptr, layout) } else { MiMalloc.dealloc(ptr, layout) } }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` belongs to the allocator `layout` selects; a block that changes sides
        // is copied into a new block from the other allocator and the old one freed.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            match (is_large(&layout), is_large(&new_layout)) {
                (false, false) => MiMalloc.realloc(ptr, layout, new_size),
                (true, true) => System.realloc(ptr, layout, new_size),
                _ => {
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::{Allocator, LARGE};

    #[test]
    fn blocks_keep_their_bytes_across_both_sides_of_the_threshold() {
        let a = Allocator;
        // SAFETY: layouts are non-zero; every pointer is used within its size and freed once
        // with the layout it has at that moment.
        unsafe {
            let mut layout = Layout::from_size_align(1000, 8).unwrap();
            let mut p = a.alloc(layout);
            for i in 0..1000 {
                *p.add(i) = (i % 251) as u8;
            }
            for size in [LARGE + 10, LARGE * 2, 2000, LARGE - 1, LARGE] {
                p = a.realloc(p, layout, size);
                assert!(!p.is_null());
                for i in 0..1000 {
                    assert_eq!(*p.add(i), (i % 251) as u8, "byte {i} after resizing to {size}");
                }
                layout = Layout::from_size_align(size, 8).unwrap();
            }
            a.dealloc(p, layout);
            let z = Layout::from_size_align(LARGE + 1, 64).unwrap();
            let q = a.alloc_zeroed(z);
            assert!(std::slice::from_raw_parts(q, z.size()).iter().all(|b| *b == 0));
            assert_eq!(q as usize % 64, 0);
            a.dealloc(q, z);
        }
    }
}
