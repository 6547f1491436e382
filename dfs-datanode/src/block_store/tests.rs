//! Unit tests of the block store on a temporary directory.

use super::*;
use dfs_proto::checksum::{self, CHECKSUM_CHUNK};

const NO_LIMITS: SpaceLimits = SpaceLimits {
    reserved: 0,
    capacity: None,
};

fn replica(id: u64, generation: u64) -> Replica {
    Replica {
        id: BlockId(id),
        generation: Generation(generation),
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Writes `data` as one replica in chunks of two checksum pieces.
fn write(store: &Arc<BlockStore>, r: Replica, data: &[u8]) -> BlockInfo {
    let mut w = store.create(r, data.len() as u64).expect("create");
    for piece in data.chunks(2 * CHECKSUM_CHUNK) {
        w.append(piece, &checksum::checksums(piece))
            .expect("append");
    }
    w.finish().expect("finish")
}

fn read_all(store: &BlockStore, r: Replica) -> Vec<u8> {
    let reader = store.open_reader(r).expect("open reader");
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < reader.length() {
        let chunk = reader.read_chunk(offset, 3 * CHECKSUM_CHUNK).expect("read");
        checksum::verify(&chunk).expect("stored checksums match");
        offset += chunk.data.len() as u64;
        out.extend_from_slice(&chunk.data);
    }
    out
}

#[test]
fn write_read_and_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("open");
    let id = store.datanode_id().clone();
    let data = pattern(5 * CHECKSUM_CHUNK + 123);
    let r = replica(258, 7);
    let info = write(&store, r, &data);
    assert_eq!(info.len, data.len() as u64);
    assert!(dir.path().join("current/02/blk_258_7").exists());
    assert!(dir.path().join("current/02/blk_258_7.meta").exists());
    assert_eq!(read_all(&store, r), data);
    write(&store, replica(1, 1), &[]);
    drop(store);

    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("reopen");
    assert_eq!(store.datanode_id(), &id, "identity survives a restart");
    assert_eq!(store.block_count(), 2);
    assert_eq!(read_all(&store, r), data);
    assert!(read_all(&store, replica(1, 1)).is_empty());
}

#[test]
fn a_copy_written_around_the_cache_reads_back_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("open");
    // Past two stages, in pieces that straddle them, ending mid-page.
    let data = pattern(2 * direct::STAGE + 3 * CHECKSUM_CHUNK + 17);
    let r = replica(77, 2);
    let mut w = store.create(r, data.len() as u64).expect("create");
    w.bypass_cache();
    for piece in data.chunks(3 * CHECKSUM_CHUNK) {
        w.append(piece, &checksum::checksums(piece))
            .expect("append");
    }
    let info = w.finish().expect("finish");
    assert_eq!(info.len, data.len() as u64);
    assert_eq!(read_all(&store, r), data);
}

#[test]
fn existing_replicas_are_refused_and_generations_coexist() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("open");
    write(&store, replica(5, 1), b"old");
    assert!(matches!(
        store.create(replica(5, 1), 0),
        Err(StoreError::AlreadyExists(_))
    ));
    let in_progress = store.create(replica(5, 3), 0).expect("create");
    assert!(matches!(
        store.create(replica(5, 3), 0),
        Err(StoreError::AlreadyExists(_))
    ));
    drop(in_progress);
    write(&store, replica(5, 2), b"new");
    drop(store);
    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("reopen");
    assert_eq!(store.list().len(), 2, "both generations kept");
    assert!(matches!(
        store.open_reader(replica(5, 3)),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn an_abandoned_write_leaves_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("open");
    let mut w = store.create(replica(9, 1), 10).expect("create");
    w.append(b"partial", &checksum::checksums(b"partial"))
        .expect("append");
    drop(w);
    assert_eq!(store.block_count(), 0);
    let tmp_entries = std::fs::read_dir(dir.path().join("tmp"))
        .expect("list tmp")
        .count();
    assert_eq!(tmp_entries, 0);
    assert!(!dir.path().join("current/09/blk_9_1").exists());
}

#[test]
fn a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("open");
    assert!(matches!(
        BlockStore::open(dir.path(), NO_LIMITS),
        Err(StoreError::Locked(_))
    ));
    drop(store);
    BlockStore::open(dir.path(), NO_LIMITS).expect("open after the first closed");
}

#[test]
fn tmp_is_emptied_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(BlockStore::open(dir.path(), NO_LIMITS).expect("open"));
    std::fs::write(dir.path().join("tmp/blk_1_1"), b"left over").expect("plant");
    drop(BlockStore::open(dir.path(), NO_LIMITS).expect("reopen"));
    assert!(!dir.path().join("tmp/blk_1_1").exists());
}

#[test]
fn damaged_replicas_are_quarantined_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("open");
    let data = pattern(100_000);
    for id in 1..=4 {
        write(&store, replica(id, 1), &data);
    }
    drop(store);
    let cur = dir.path().join("current");
    // 1: corrupt sidecar magic; 2: data longer than the sidecar says; 3: no sidecar;
    // 4: left intact.
    let meta1 = cur.join("01/blk_1_1.meta");
    let mut bytes = std::fs::read(&meta1).expect("read sidecar");
    bytes[0] ^= 0xff;
    std::fs::write(&meta1, bytes).expect("corrupt sidecar");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(cur.join("02/blk_2_1"))
        .expect("open data");
    f.write_all(b"extra").expect("grow data");
    std::fs::remove_file(cur.join("03/blk_3_1.meta")).expect("drop sidecar");
    // A sidecar with no data, and a stray file that is not ours.
    std::fs::write(cur.join("05/blk_5_1.meta"), b"DFSM").expect("plant orphan");
    std::fs::write(cur.join("05/notes.txt"), b"hi").expect("plant stray");

    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("reopen");
    let ids: Vec<u64> = store.list().iter().map(|b| b.id.0).collect();
    assert_eq!(ids, vec![4]);
    for id in 1..=3 {
        assert!(matches!(
            store.open_reader(replica(id, 1)),
            Err(StoreError::NotFound(_))
        ));
    }
    assert!(!cur.join("01/blk_1_1").exists());
    assert!(dir.path().join("quarantine/blk_1_1").exists());
    assert!(!cur.join("05/blk_5_1.meta").exists());
    assert!(
        cur.join("05/notes.txt").exists(),
        "foreign files are left alone"
    );
    assert_eq!(read_all(&store, replica(4, 1)), data);
}

#[test]
fn delete_removes_both_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("open");
    write(&store, replica(7, 1), b"bytes");
    assert!(store.delete(replica(7, 1)).expect("delete"));
    assert!(!store.delete(replica(7, 1)).expect("delete again"));
    assert!(!dir.path().join("current/07/blk_7_1").exists());
    assert!(!dir.path().join("current/07/blk_7_1.meta").exists());
    assert_eq!(store.block_count(), 0);
}

#[test]
fn writes_beyond_capacity_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = SpaceLimits {
        reserved: 0,
        capacity: Some(1000),
    };
    let store = BlockStore::open(dir.path(), limits).expect("open");
    assert!(matches!(
        store.create(replica(1, 1), 2000),
        Err(StoreError::NoSpace { .. })
    ));
    let held = store.create(replica(2, 1), 600).expect("fits");
    assert!(
        matches!(
            store.create(replica(3, 1), 600),
            Err(StoreError::NoSpace { .. })
        ),
        "space promised to a write in progress is not handed out twice"
    );
    drop(held);
    store.create(replica(3, 1), 600).expect("fits again");
}

#[test]
fn reading_past_the_end_is_out_of_range() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BlockStore::open(dir.path(), NO_LIMITS).expect("open");
    write(&store, replica(1, 1), b"short");
    let reader = store.open_reader(replica(1, 1)).expect("open reader");
    assert!(matches!(
        reader.read_chunk(CHECKSUM_CHUNK as u64, 10),
        Err(StoreError::OutOfRange { .. })
    ));
}
