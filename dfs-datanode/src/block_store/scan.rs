//! The start-up scan of `current/`: which replicas are whole, and which files to set aside.
//!
//! A data file without a valid sidecar, a sidecar whose length disagrees with the data, a
//! sidecar without data, and a replica in the wrong subdirectory are moved to `quarantine/`
//! and logged; they are never served. Two generations of one block are both kept (the
//! namenode decides which is stale).

use super::{IoContext, Replica, StoreError};
use crate::durable::durable_rename;
use crate::sidecar::Sidecar;
use dfs_proto::{BlockId, Generation};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a file name in `current/` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Data(Replica),
    Meta(Replica),
}

/// Parses `blk_<id>_<gen>` or `blk_<id>_<gen>.meta`, accepting only the canonical spelling.
fn parse_name(name: &str) -> Option<Entry> {
    let (stem, is_meta) = match name.strip_suffix(".meta") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let (id, generation) = stem.strip_prefix("blk_")?.split_once('_')?;
    let replica = Replica {
        id: BlockId(id.parse().ok()?),
        generation: Generation(generation.parse().ok()?),
    };
    if replica.file_name() != stem {
        return None;
    }
    Some(if is_meta {
        Entry::Meta(replica)
    } else {
        Entry::Data(replica)
    })
}

/// Moves a damaged file out of the way.
fn quarantine(path: &Path, quarantine_dir: &Path, reason: &str) -> Result<(), StoreError> {
    tracing::warn!(path = %path.display(), reason, "quarantining a damaged replica file");
    std::fs::create_dir_all(quarantine_dir).context("create the quarantine directory")?;
    let Some(name) = path.file_name() else {
        return Ok(());
    };
    durable_rename(path, &quarantine_dir.join(name)).context("quarantine a damaged file")
}

/// Scans `current/` and answers every whole replica with its length.
pub(super) fn scan(
    current: &Path,
    quarantine_dir: &Path,
) -> Result<HashMap<Replica, u64>, StoreError> {
    let mut data: HashMap<Replica, PathBuf> = HashMap::new();
    let mut metas: HashMap<Replica, PathBuf> = HashMap::new();
    for sub in std::fs::read_dir(current).context("list the current directory")? {
        let sub = sub.context("list the current directory")?;
        if !sub
            .file_type()
            .context("stat a block subdirectory")?
            .is_dir()
        {
            tracing::warn!(path = %sub.path().display(), "unexpected file in current/, left alone");
            continue;
        }
        let sub_name = sub.file_name().to_string_lossy().into_owned();
        for entry in std::fs::read_dir(sub.path()).context("list a block subdirectory")? {
            let entry = entry.context("list a block subdirectory")?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(parsed) = parse_name(&name) else {
                tracing::warn!(path = %path.display(), "unexpected file in current/, left alone");
                continue;
            };
            let (Entry::Data(r) | Entry::Meta(r)) = parsed;
            if r.subdir() != sub_name {
                quarantine(&path, quarantine_dir, "replica in the wrong subdirectory")?;
                continue;
            }
            match parsed {
                Entry::Data(r) => data.insert(r, path),
                Entry::Meta(r) => metas.insert(r, path),
            };
        }
    }

    let mut replicas = HashMap::new();
    for (r, data_path) in data {
        let Some(meta_path) = metas.remove(&r) else {
            quarantine(&data_path, quarantine_dir, "no sidecar")?;
            continue;
        };
        let problem = match check(&data_path, &meta_path) {
            Ok(len) => {
                replicas.insert(r, len);
                continue;
            }
            Err(problem) => problem,
        };
        quarantine(&data_path, quarantine_dir, &problem)?;
        quarantine(&meta_path, quarantine_dir, &problem)?;
    }
    for meta_path in metas.into_values() {
        quarantine(&meta_path, quarantine_dir, "sidecar without data")?;
    }
    Ok(replicas)
}

/// Answers the replica's length if its sidecar is valid and agrees with the data file.
fn check(data_path: &Path, meta_path: &Path) -> Result<u64, String> {
    let meta = std::fs::File::open(meta_path).map_err(|e| format!("cannot open sidecar: {e}"))?;
    let sidecar = Sidecar::read(&meta).map_err(|e| e.to_string())?;
    let len = std::fs::metadata(data_path)
        .map_err(|e| format!("cannot stat data: {e}"))?
        .len();
    if len != sidecar.length {
        return Err(format!(
            "data has {len} bytes, sidecar says {}",
            sidecar.length
        ));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_only_in_canonical_form() {
        let r = Replica {
            id: BlockId(300),
            generation: Generation(2),
        };
        assert_eq!(parse_name("blk_300_2"), Some(Entry::Data(r)));
        assert_eq!(parse_name("blk_300_2.meta"), Some(Entry::Meta(r)));
        for bad in [
            "blk_300",
            "blk_+300_2",
            "blk_0300_2",
            "x_1_2",
            "blk_1_2.tmp",
            "blk_1_2_3",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
