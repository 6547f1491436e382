//! Fuzz targets (proptest) for what the namenode reads back from its own disk: snapshot files
//! ([`snapshot_file::decode_file`]), the namespace inside them ([`decode_snapshot`]), Raft log
//! records, and the redb log file itself. Arbitrary bytes must give an error, never a panic;
//! a real snapshot file with any one byte changed must be refused (the checksum) or, where the
//! change means nothing (a JSON key of a field that falls back to the same default), load as
//! the very same snapshot: never as some other namespace.
//!
//! Bounded for `make test`; run longer with `PROPTEST_CASES=100000 cargo test -p dfs-namenode
//! --lib fuzz` (see docs/SECURITY.md).

use super::log_store::LogDb;
use super::snapshot_file::{SnapshotDir, decode_file};
use super::state_machine::decode_snapshot;
use super::{Entry, SnapshotMeta};
use crate::namespace::{Namespace, NamespaceConfig};
use openraft::{CommittedLeaderId, LogId};
use proptest::prelude::*;

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), index)),
        last_membership: Default::default(),
        snapshot_id: format!("3-{index}-0"),
    }
}

/// A real snapshot file's bytes, holding a fresh namespace.
fn real_snapshot_file() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let snaps = SnapshotDir::open(dir.path().to_path_buf()).expect("open");
    let ns = Namespace::new(NamespaceConfig {
        block_size: 1 << 20,
        lease_ms: 1000,
    });
    let data = serde_json::to_vec(&serde_json::json!({ "namespace": ns })).expect("encode");
    snaps.save(&meta(41), &data).expect("save");
    let path = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .expect("a snapshot file");
    std::fs::read(path).expect("read")
}

/// A real redb log file's bytes, holding a few entries, a vote and a purge.
fn real_log_file() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("raft.redb");
    {
        let db = LogDb::open(&path).expect("open");
        db.commit_batch(|b| {
            let entries: Vec<Entry> = (1..=5)
                .map(|i| Entry {
                    log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
                    payload: openraft::EntryPayload::Blank,
                })
                .collect();
            b.append(&entries)?;
            b.vote(&openraft::Vote::new(1, 1))?;
            b.purge_upto(&LogId::new(CommittedLeaderId::new(1, 1), 2))
        })
        .expect("write");
    }
    std::fs::read(&path).expect("read")
}

/// The number of cases: `PROPTEST_CASES` when set (a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1000)))]

    #[test]
    fn snapshot_files_from_arbitrary_bytes(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024),
        (".{0,200}", prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(h, d)| {
            let mut v = h.into_bytes();
            v.push(b'\n');
            v.extend(d);
            v
        }),
    ]) {
        let _ = decode_file(&bytes);
        let _ = decode_snapshot(&bytes);
        let _ = serde_json::from_slice::<Entry>(&bytes);
    }

    #[test]
    fn any_changed_byte_of_a_snapshot_file_is_refused(
        at in any::<prop::sample::Index>(),
        xor in 1..=255u8,
    ) {
        let original = real_snapshot_file();
        let (meta, data) = decode_file(&original).expect("a real file decodes");
        let mut bytes = original.clone();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        if let Ok((m, d)) = decode_file(&bytes) {
            prop_assert!(
                m == meta && d == data,
                "byte {} ^ {:#x} loaded as a different snapshot",
                i,
                xor
            );
        }
    }

    #[test]
    fn a_truncated_snapshot_file_is_refused(cut in any::<prop::sample::Index>()) {
        let bytes = real_snapshot_file();
        prop_assert!(decode_file(&bytes[..cut.index(bytes.len())]).is_err());
    }
}

proptest! {
    // Each case writes and opens a database file: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn a_damaged_log_file_fails_cleanly(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..16),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = real_log_file();
        for (at, xor) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("raft.redb");
        std::fs::write(&path, &bytes).expect("write");
        // Opening and checking may fail (that is the point); they must not panic.
        if let Ok(db) = LogDb::open(&path) {
            let _ = db.check();
            let _ = db.log_state();
            let _ = db.vote();
            let _ = db.committed();
        }
    }
}
