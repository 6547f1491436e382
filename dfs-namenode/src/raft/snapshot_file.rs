//! Snapshots on disk: `<data-dir>/snapshots/snapshot-<last index>.snap`, written crash-safely
//! (temporary file, fsync, rename, fsync the directory) so that a crash leaves either the old or
//! the new snapshot, never a torn one.
//!
//! File format: one line of JSON header (the Raft snapshot meta, the data length and a CRC32C of
//! the meta and the data), a newline, then the snapshot data (the serialized state machine). A
//! file that does not parse, whose data is shorter or longer than the header says, or whose meta
//! and data do not match the checksum is corrupt: loading it is an error naming the file, never
//! an empty namespace. Files written before the checksum existed (no `crc32c` in the header) are
//! still read, checked by length and by decoding only.

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
#[serde(deny_unknown_fields)]
struct Header {
    meta: SnapshotMeta,
    len: u64,
    /// CRC32C of the meta (as JSON) followed by the data ([`checksum`]); absent in files
    /// written by older versions. Unknown header keys are refused, so a damaged key cannot make
    /// a file look like an old one without a checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crc32c: Option<u32>,
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
            crc32c: Some(
                checksum(meta, data).map_err(|e| SnapshotFileError::Corrupt {
                    path: path.clone(),
                    reason: format!("cannot encode header: {e}"),
                })?,
            ),
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

    /// The newest snapshot, if any, with the path it was read from.
    pub fn load_newest(
        &self,
    ) -> Result<Option<(SnapshotMeta, Vec<u8>, PathBuf)>, SnapshotFileError> {
        let Some((_, path)) = self.snapshot_files()?.pop() else {
            return Ok(None);
        };
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        let (meta, data) = decode_file(&bytes).map_err(|reason| SnapshotFileError::Corrupt {
            path: path.clone(),
            reason,
        })?;
        Ok(Some((meta, data.to_vec(), path)))
    }

    /// The directory's path (for messages).
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// The CRC32C of `meta` as JSON followed by `data`.
fn checksum(meta: &SnapshotMeta, data: &[u8]) -> Result<u32, serde_json::Error> {
    let meta = serde_json::to_vec(meta)?;
    Ok(crc32c::crc32c_append(crc32c::crc32c(&meta), data))
}

/// Splits a snapshot file into its meta and its data, checking length and checksum; the error
/// says what is wrong.
pub fn decode_file(bytes: &[u8]) -> Result<(SnapshotMeta, &[u8]), String> {
    let split = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| "no header line".to_string())?;
    let header: Header =
        serde_json::from_slice(&bytes[..split]).map_err(|e| format!("bad header: {e}"))?;
    let data = &bytes[split + 1..];
    if data.len() as u64 != header.len {
        return Err(format!(
            "header says {} bytes of data, file has {} (truncated or extended)",
            header.len,
            data.len()
        ));
    }
    if let Some(want) = header.crc32c {
        let got = checksum(&header.meta, data).map_err(|e| format!("bad header: {e}"))?;
        if got != want {
            return Err(format!(
                "checksum mismatch (header crc32c {want:#010x}, meta and data {got:#010x})"
            ));
        }
    }
    Ok((header.meta, data))
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
        let (m, data, _) = snaps.load_newest().expect("load").expect("some");
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
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn a_flipped_data_byte_fails_the_checksum() {
        let dir = tempfile::tempdir().expect("temp dir");
        let snaps = SnapshotDir::open(dir.path().to_path_buf()).expect("open");
        snaps.save(&meta(3), b"0123456789").expect("save");
        let (_, path) = snaps.snapshot_files().expect("list").pop().expect("one");
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&path, &bytes).expect("flip");
        let err = snaps.load_newest().expect_err("corrupt");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn a_file_without_a_checksum_is_still_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let snaps = SnapshotDir::open(dir.path().to_path_buf()).expect("open");
        let header = serde_json::json!({"meta": meta(4), "len": 4});
        let mut bytes = serde_json::to_vec(&header).expect("encode");
        bytes.push(b'\n');
        bytes.extend_from_slice(b"four");
        fs::write(dir.path().join(format!("{PREFIX}{:020}{SUFFIX}", 4)), bytes).expect("write");
        let (m, data, _) = snaps.load_newest().expect("load").expect("some");
        assert_eq!(m.snapshot_id, "s4");
        assert_eq!(data, b"four");
    }
}
