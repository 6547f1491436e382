//! Crash safety for files on disk: the one helper every durable write goes through.
//!
//! A file becomes visible under its final name only once its bytes are on disk, and the rename
//! itself is made durable by syncing the directory that holds the new name.

use std::fs::File;
use std::io;
use std::path::Path;

/// Syncs `from` to disk, renames it to `to`, then syncs the directory of `to` so that the rename
/// survives a crash.
pub fn durable_rename(from: &Path, to: &Path) -> io::Result<()> {
    File::open(from)?.sync_all()?;
    std::fs::rename(from, to)?;
    match to.parent() {
        Some(dir) => fsync_dir(dir),
        None => Ok(()),
    }
}

/// Syncs a directory, making its entries (creations, renames, removals) durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `contents` to a new file `tmp`, then moves it durably to `to`.
pub fn write_durably(tmp: &Path, to: &Path, contents: &[u8]) -> io::Result<()> {
    std::fs::write(tmp, contents)?;
    durable_rename(tmp, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_durably_replaces_the_target() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tmp = dir.path().join("x.tmp");
        let to = dir.path().join("x");
        write_durably(&tmp, &to, b"one").expect("first write");
        write_durably(&tmp, &to, b"two").expect("second write");
        assert_eq!(std::fs::read(&to).expect("read"), b"two");
        assert!(!tmp.exists());
    }
}
