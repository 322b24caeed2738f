//! Process-wide settings of the C allocator for the long-running daemon.
//!
//! glibc raises its mmap threshold every time a large block (a muxed clip, an
//! encoded chunk, a GStreamer buffer) is freed, up to 32 MiB; after that such
//! blocks come from the arenas, whose freed space is rarely given back. Over a
//! day of clips the resident size of the daemon creeps while its live heap stays
//! flat (measured: about 1-2 MB a minute, and 100 MB more resident from the
//! start). A fixed threshold keeps large blocks in their own mappings, returned
//! to the kernel when freed. An operator's own `MALLOC_MMAP_THRESHOLD_` or
//! `GLIBC_TUNABLES` wins.
//!
//! Smaller blocks still come from the arenas, and glibc only gives back free
//! space at the top of an arena's heap: pages freed in the middle stay resident
//! until `malloc_trim` hands them back. The daemon calls [`trim`] once a minute
//! (`[box] allocator_trim_s`) and counts what it gave back.

/// Blocks at least this large get their own mapping.
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// What [`tune`] did, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuned {
    /// The fixed threshold is set.
    Fixed(usize),
    /// The environment sets the allocator up; left alone.
    ByEnvironment,
    /// Not glibc: nothing to do.
    NotGlibc,
    /// glibc refused the setting.
    Refused,
}

/// Fixes the mmap threshold (see the module docs). Call once, early in `main`.
pub fn tune() -> Tuned {
    let env_set = ["MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if env_set {
        return Tuned::ByEnvironment;
    }
    set_threshold(MMAP_THRESHOLD)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_threshold(bytes: usize) -> Tuned {
    let Ok(value) = libc::c_int::try_from(bytes) else {
        return Tuned::Refused;
    };
    // SAFETY: mallopt only changes allocator parameters; it takes plain integers
    // and is safe to call at any time (glibc serialises it with the arenas).
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, value) };
    if ok == 1 {
        Tuned::Fixed(bytes)
    } else {
        Tuned::Refused
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_threshold(_bytes: usize) -> Tuned {
    Tuned::NotGlibc
}

/// The resident size of this process in bytes (`/proc/self/statm`), where the
/// system says.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size()?)
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn page_size() -> Option<u64> {
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0)
}

#[cfg(not(unix))]
fn page_size() -> Option<u64> {
    None
}

/// Gives free pages inside the allocator's arenas back to the kernel and
/// returns how much the resident size went down (0 if it did not; `None`
/// where the allocator has no such call or the size cannot be read). It walks
/// every arena under its lock, so it runs off the async threads, and seldom.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim() -> Option<u64> {
    let before = resident_bytes()?;
    // SAFETY: malloc_trim only returns free memory of the allocator to the
    // kernel; it takes the arenas' locks itself and frees nothing in use.
    unsafe { libc::malloc_trim(0) };
    let after = resident_bytes()?;
    Some(before.saturating_sub(after))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_fixed_threshold() {
        assert_eq!(set_threshold(MMAP_THRESHOLD), Tuned::Fixed(MMAP_THRESHOLD));
        // More than a C int can say is refused before glibc sees it.
        assert_eq!(set_threshold(usize::MAX), Tuned::Refused);
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn trim_gives_back_pages_freed_in_the_middle_of_an_arena() {
        // Many small blocks (below the mmap threshold, so from an arena), every
        // one touched; then all but the last freed, which pins the top of the
        // heap so that glibc's own top trimming cannot give the rest back.
        const BLOCKS: usize = 8 * 1024;
        let mut blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8; 4000]).collect();
        let pin = blocks.pop();
        let before = resident_bytes().expect("statm");
        drop(blocks);
        let released = trim().expect("glibc");
        assert!(
            released >= 8 << 20,
            "trim gave back {released} bytes of ~32 MB freed (resident before {before})"
        );
        drop(pin);
    }
}
