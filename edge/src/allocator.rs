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
}
