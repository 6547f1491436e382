//! How much room the datanode has: the file system's size from `statvfs`, less the space kept
//! free for others, capped by the operator's `--capacity`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Limits set by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceLimits {
    /// Bytes of the file system never used for blocks.
    pub reserved: u64,
    /// Upper bound on the capacity reported, when set.
    pub capacity: Option<u64>,
}

/// Space as the datanode reports it to namenodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Space {
    pub capacity: u64,
    /// Bytes of replicas this datanode holds.
    pub used: u64,
    pub remaining: u64,
}

/// Total and available bytes of the file system holding `path`.
fn statvfs(path: &Path) -> io::Result<(u64, u64)> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs is plain old data, valid when zeroed; the kernel fills it in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` a valid out pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok((
        (st.f_blocks as u64).saturating_mul(frsize),
        (st.f_bavail as u64).saturating_mul(frsize),
    ))
}

/// Computes the reported space. `pending` is space promised to writes still in progress.
pub fn measure(path: &Path, limits: SpaceLimits, used: u64, pending: u64) -> io::Result<Space> {
    let (total, available) = statvfs(path)?;
    Ok(compute(total, available, limits, used, pending))
}

fn compute(total: u64, available: u64, limits: SpaceLimits, used: u64, pending: u64) -> Space {
    let capacity = total
        .saturating_sub(limits.reserved)
        .min(limits.capacity.unwrap_or(u64::MAX));
    let remaining = available
        .saturating_sub(limits.reserved)
        .min(capacity.saturating_sub(used))
        .saturating_sub(pending);
    Space {
        capacity,
        used,
        remaining,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_cap_shrink_what_is_reported() {
        let limits = SpaceLimits {
            reserved: 100,
            capacity: Some(500),
        };
        let s = compute(1000, 800, limits, 200, 50);
        assert_eq!(s.capacity, 500);
        assert_eq!(s.used, 200);
        assert_eq!(s.remaining, 250);
        let tight = compute(1000, 50, limits, 0, 0);
        assert_eq!(tight.remaining, 0);
    }

    #[test]
    fn statvfs_sees_a_real_file_system() {
        let dir = tempfile::tempdir().expect("temp dir");
        let limits = SpaceLimits {
            reserved: 0,
            capacity: None,
        };
        let s = measure(dir.path(), limits, 0, 0).expect("statvfs");
        assert!(s.capacity > 0);
    }
}
