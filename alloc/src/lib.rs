//! The global allocator of every rkube binary: [mimalloc], tuned for a small resident set.
//!
//! mimalloc handles the many small, short-lived allocations of request handling and watch
//! fan-out better than glibc's malloc. Out of the box, though, it commits its arenas eagerly on
//! Linux, and memory in an eagerly committed arena that is freed again is not handed back to
//! the OS, so a process keeps the high-water mark of its start-up (certificates, the OpenAPI
//! documents, initial lists) resident for good: about 28 MiB of the idle all-in-one server.
//! With `arena_eager_commit` off, pages are committed as they are used and purged (decommitted)
//! shortly after they are freed, as glibc would trim them.
//!
//! Use it in a binary's `main.rs`:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: rkube_alloc::Allocator = rkube_alloc::Allocator;
//!
//! fn main() {
//!     assert!(!rkube_alloc::arena_eager_commit() || std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some());
//! }
//! ```
//!
//! The option is set by a constructor that runs before `main` (and before the first arena is
//! reserved); the environment variable `MIMALLOC_ARENA_EAGER_COMMIT` still overrides it, as
//! every `MIMALLOC_*` variable does.
//!
//! [mimalloc]: https://github.com/microsoft/mimalloc

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::{c_int, c_long};

/// mimalloc, with the options set in this crate. Zero-sized: use it as the
/// `#[global_allocator]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Allocator;

// SAFETY: every method forwards to mimalloc's `GlobalAlloc`, which upholds the contract.
//
// `alloc_zeroed` is never inlined: a binary's allocator shim then calls into this crate's
// object file, which links the constructor below into the binary with it. (Small functions
// are inlined across crates even without `#[inline]`; had every method been, nothing of this
// crate, constructor included, would be linked.)
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's; `ptr` came from this allocator.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's; `ptr` came from this allocator.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

unsafe extern "C" {
    /// mimalloc's `void mi_option_set_default(mi_option_t option, long value)`: the value an
    /// option takes unless the environment (`MIMALLOC_<OPTION>`) sets it.
    fn mi_option_set_default(option: c_int, value: c_long);
    /// mimalloc's `long mi_option_get(mi_option_t option)`.
    fn mi_option_get(option: c_int) -> c_long;
}

/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_t` (the same in v2 and v3).
const ARENA_EAGER_COMMIT: c_int = 4;

/// Whether mimalloc commits its arenas eagerly (false unless the environment says otherwise).
pub fn arena_eager_commit() -> bool {
    // SAFETY: reads an option; any value of the enum is valid.
    unsafe { mi_option_get(ARENA_EAGER_COMMIT) != 0 }
}

/// Sets the options' defaults (0 = commit arenas on demand); the environment still wins.
extern "C" fn configure() {
    // SAFETY: sets the default of an option to a value the option accepts; allocation-free.
    unsafe { mi_option_set_default(ARENA_EAGER_COMMIT, 0) }
}

/// Runs [`configure`] as an ELF constructor, before `main` and before Rust's runtime allocates.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00099")]
static CONFIGURE: extern "C" fn() = configure;

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static GLOBAL: Allocator = Allocator;

    #[test]
    fn arenas_are_committed_on_demand_unless_the_environment_says_otherwise() {
        let expected = std::env::var("MIMALLOC_ARENA_EAGER_COMMIT")
            .map(|v| v != "0")
            .unwrap_or(false);
        assert_eq!(arena_eager_commit(), expected);
        // The allocator works: a round trip through every method.
        let mut v: Vec<u64> = Vec::with_capacity(4);
        v.extend(0..1_000);
        v.shrink_to_fit();
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        assert_eq!(
            vec![0u8; 1 << 20]
                .iter()
                .map(|b| *b as usize)
                .sum::<usize>(),
            0
        );
    }
}
