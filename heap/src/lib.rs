//! Resident memory that follows what the process holds.
//!
//! The scheduler keeps every pending job in memory, and each scheduling pass builds and
//! drops large buffers (a row per pending job). With glibc's allocator, two things make the
//! resident size drift far above what is live:
//!
//! - **The dynamic mmap threshold.** A large block is mapped on its own and unmapped when
//!   freed, but glibc then raises its threshold to that block's size (up to 32 MiB), so the
//!   next pass's buffers come from the heap and stay there, interleaved with long-lived
//!   rows. [`keep_large_blocks_mapped`] fixes the threshold instead.
//! - **Free pages inside the heap** are returned to the system only from its top.
//!   [`give_back_free_pages`] returns every whole free page (`malloc_trim`).
//!
//! On other C libraries both do nothing and say so.

/// Serves every allocation of at least `bytes` with its own mapping, returned to the
/// system when freed, and stops glibc from raising that threshold by itself. Returns
/// whether the allocator took the setting.
pub fn keep_large_blocks_mapped(bytes: usize) -> bool {
    imp::keep_large_blocks_mapped(bytes)
}

/// Gives the heap's free pages back to the system. Returns whether any memory was
/// returned. It walks the allocator's free lists under their locks: call it off the async
/// runtime, after something large was freed, not on every request.
pub fn give_back_free_pages() -> bool {
    imp::give_back_free_pages()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod imp {
    pub fn keep_large_blocks_mapped(bytes: usize) -> bool {
        let Ok(bytes) = libc::c_int::try_from(bytes) else {
            return false;
        };
        // SAFETY: mallopt takes a parameter number and a value and only changes the
        // allocator's settings; a value it does not accept for M_MMAP_THRESHOLD is refused
        // with 0, not undefined behaviour.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
    }

    pub fn give_back_free_pages() -> bool {
        // SAFETY: malloc_trim only releases memory the allocator holds free; it takes the
        // arenas' locks itself and is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn keep_large_blocks_mapped(_bytes: usize) -> bool {
        false
    }

    pub fn give_back_free_pages() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_threshold() {
        assert!(keep_large_blocks_mapped(256 * 1024));
        // Not a C int: refused before reaching the allocator.
        assert!(!keep_large_blocks_mapped(usize::MAX));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_pages_are_given_back() {
        fn rss_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").expect("status");
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("VmRSS")
        }
        // 64 MiB in small blocks (heap, not mappings), touched, then all but the last freed:
        // the last one pins the heap's top, so only trimming inside the heap helps.
        let mut blocks: Vec<Vec<u8>> = (0..16 * 1024).map(|_| vec![1u8; 4000]).collect();
        let pin = vec![1u8; 4000];
        let full = rss_kib();
        blocks.clear();
        blocks.shrink_to_fit();
        let freed = rss_kib();
        assert!(give_back_free_pages());
        let trimmed = rss_kib();
        assert!(
            trimmed + 32 * 1024 < full && trimmed < freed,
            "resident {full} KiB full, {freed} KiB freed, {trimmed} KiB trimmed"
        );
        drop(pin);
    }
}
