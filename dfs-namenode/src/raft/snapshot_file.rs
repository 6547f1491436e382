//! Snapshots on disk: `<data-dir>/snapshots/snapshot-<last index>.snap`, written crash-safely
//! (temporary file, fsync, rename, fsync the directory) so that a crash leaves either the old or
//! the new snapshot, never a torn one.
//!
//! File format: one line of JSON header (the Raft snapshot meta and the data length), a newline,
//! then the snapshot data (the serialized state machine). A file that does not parse, or whose
//! data is shorter or longer than the header says, is corrupt: loading it is an error, never an
//! empty namespace.

use super::SnapshotMeta;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("snapshot {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct Header {
    meta: SnapshotMeta,
    len: u64,
}

/// The directory holding the current snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotFileError {
    let path = path.to_path_buf();
    move |source| SnapshotFileError::Io {
        action,
        path,
        source,
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the whole new one.
pub fn durable_write(path: &Path, bytes: &[&[u8]]) -> Result<(), SnapshotFileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        for part in bytes {
            f.write_all(part).map_err(io_err("write", &tmp))?;
        }
        f.sync_all().map_err(io_err("fsync", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

impl SnapshotDir {
    /// Creates the directory if needed and removes temporary files left by a crash.
    pub fn open(dir: PathBuf) -> Result<SnapshotDir, SnapshotFileError> {
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let path = entry.map_err(io_err("list", &dir))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path).map_err(io_err("remove leftover", &path))?;
            }
        }
        Ok(SnapshotDir { dir })
    }

    fn snapshot_files(&self) -> Result<Vec<(u64, PathBuf)>, SnapshotFileError> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))? {
            let path = entry.map_err(io_err("list", &self.dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let index = name
                .strip_prefix(PREFIX)
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(index) = index {
                files.push((index, path));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Stores a snapshot durably and removes older ones.
    pub fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), SnapshotFileError> {
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        let path = self.dir.join(format!("{PREFIX}{index:020}{SUFFIX}"));
        let header = Header {
            meta: meta.clone(),
            len: data.len() as u64,
        };
        let mut head = serde_json::to_vec(&header).map_err(|e| SnapshotFileError::Corrupt {
            path: path.clone(),
            reason: format!("cannot encode header: {e}"),
        })?;
        head.push(b'\n');
        durable_write(&path, &[&head, data])?;
        for (old, old_path) in self.snapshot_files()? {
            if old < index {
                fs::remove_file(&old_path).map_err(io_err("remove old snapshot", &old_path))?;
            }
        }
        Ok(())
    }

    /// The newest snapshot, if any.
    pub fn load_newest(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, SnapshotFileError> {
        let Some((_, path)) = self.snapshot_files()?.pop() else {
            return Ok(None);
        };
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        let corrupt = |reason: String| SnapshotFileError::Corrupt {
            path: path.clone(),
            reason,
        };
        let split = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| corrupt("no header line".into()))?;
        let header: Header = serde_json::from_slice(&bytes[..split])
            .map_err(|e| corrupt(format!("bad header: {e}")))?;
        let data = &bytes[split + 1..];
        if data.len() as u64 != header.len {
            return Err(corrupt(format!(
                "header says {} bytes of data, file has {}",
                header.len,
                data.len()
            )));
        }
        Ok(Some((header.meta, data.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId};

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
            last_membership: Default::default(),
            snapshot_id: format!("s{index}"),
        }
    }

    #[test]
    fn newest_snapshot_wins_and_old_ones_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let snaps = SnapshotDir::open(dir.path().join("snapshots")).expect("open");
        assert!(snaps.load_newest().expect("load").is_none());
        snaps.save(&meta(5), b"five").expect("save");
        snaps.save(&meta(12), b"twelve").expect("save");
        let (m, data) = snaps.load_newest().expect("load").expect("some");
        assert_eq!(m.snapshot_id, "s12");
        assert_eq!(data, b"twelve");
        assert_eq!(snaps.snapshot_files().expect("list").len(), 1);
    }

    #[test]
    fn a_truncated_snapshot_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let snaps = SnapshotDir::open(dir.path().to_path_buf()).expect("open");
        snaps.save(&meta(3), b"0123456789").expect("save");
        let (_, path) = snaps.snapshot_files().expect("list").pop().expect("one");
        let bytes = fs::read(&path).expect("read");
        fs::write(&path, &bytes[..bytes.len() - 3]).expect("truncate");
        let err = snaps.load_newest().expect_err("corrupt");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}
