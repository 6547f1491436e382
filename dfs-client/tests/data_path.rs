//! Writer and reader against fake in-process datanodes and namenode: multi-block round trips
//! through the pipeline, failover from a corrupt replica, holes, overwrite, and failures.

mod fake;

use dfs_client::{Client, ClientConfig, Error};
use dfs_proto::rest::BlockInfo;
use dfs_proto::{ErrorCode, InodeId, Name};
use fake::{FakeDatanode, FakeNamenode};
use std::sync::atomic::Ordering;
use std::time::Duration;

const BLOCK: u64 = 256 * 1024;

/// Deterministic bytes that differ at every offset and across blocks.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn cluster(datanodes: usize) -> (FakeNamenode, Vec<FakeDatanode>, Client) {
    let mut dns = Vec::new();
    for _ in 0..datanodes {
        dns.push(FakeDatanode::start().await);
    }
    let nn = FakeNamenode::start(BLOCK, &dns).await;
    let mut config = ClientConfig::new(vec![nn.addr.clone()]);
    config.failover_timeout = Duration::from_secs(5);
    let client = Client::new(config).expect("client");
    (nn, dns, client)
}

#[tokio::test]
async fn multi_block_round_trip_survives_a_corrupt_replica() {
    let (nn, dns, client) = cluster(3).await;
    // 5 full blocks and a partial one, written in awkward pieces.
    let data = pattern(5 * BLOCK as usize + 70_001, 1);
    let name = Name::new("big").expect("name");
    let mut writer = client
        .create_file(InodeId::ROOT, &name, 0o644)
        .await
        .expect("create");
    for piece in data.chunks(100_003) {
        writer.write(piece).await.expect("write");
    }
    let attr = writer.close().await.expect("close");
    assert_eq!(attr.size, data.len() as u64);

    let (_, blocks) = nn.file(attr.ino);
    assert_eq!(blocks.len(), 6);
    assert!(blocks[..5].iter().all(|b| b.len == BLOCK));
    assert_eq!(blocks[5].len, 70_001);
    // The pipeline put every block on every datanode.
    for (i, b) in blocks.iter().enumerate() {
        let want = &data[i * BLOCK as usize..][..b.len as usize];
        for dn in &dns {
            assert_eq!(
                dn.stored(*b).as_deref(),
                Some(want),
                "block {i} on {}",
                dn.addr
            );
        }
    }

    // The first replica in read order now serves corrupt data.
    dns[0].corrupt.store(true, Ordering::SeqCst);
    let mut out = Vec::new();
    let n = client.cat("/big", &mut out).await.expect("cat");
    assert_eq!(n, data.len() as u64);
    assert!(out == data, "cat returned different bytes");
    assert!(
        dns[0].reads.load(Ordering::SeqCst) > 0,
        "the corrupt replica was tried"
    );
    assert!(
        dns[1].reads.load(Ordering::SeqCst) > 0,
        "the reader fell over to the next"
    );

    // Random access across block boundaries.
    let mut reader = client.open_reader(attr.ino);
    for (offset, len) in [
        (0u64, 10usize),
        (BLOCK - 5, 10),
        (BLOCK * 2 + 1000, BLOCK as usize * 2),
        (data.len() as u64 - 3, 100),
        (data.len() as u64 + 5, 10),
    ] {
        let got = reader.read_at(offset, len).await.expect("read_at");
        let start = (offset as usize).min(data.len());
        let end = (start + len).min(data.len());
        assert!(got[..] == data[start..end], "read_at({offset}, {len})");
    }

    // Lease renewal ran while the writer was open? Not necessarily (short write); but a
    // second writer held open long enough must renew.
    let name = Name::new("slow").expect("name");
    let writer = client
        .create_file(InodeId::ROOT, &name, 0o644)
        .await
        .expect("create slow");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while nn.state.lock().expect("lock").renewals == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no lease renewal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writer.close().await.expect("close empty");
}

#[tokio::test]
async fn put_get_overwrite_and_holes() {
    let (nn, _dns, client) = cluster(2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("in");
    let data = pattern(3 * BLOCK as usize, 2);
    std::fs::write(&local, &data).expect("write local");

    let mut last_progress = 0;
    let attr = client
        .put(&local, "/f", false, &mut |n| last_progress = n)
        .await
        .expect("put");
    assert_eq!(attr.size, data.len() as u64);
    assert_eq!(last_progress, data.len() as u64);

    // Without overwrite an existing file is refused; with it, the contents are replaced.
    let err = client
        .put(&local, "/f", false, &mut |_| {})
        .await
        .expect_err("exists");
    assert_eq!(err.code(), Some(ErrorCode::Exists));
    let shorter = pattern(BLOCK as usize / 2 + 1, 3);
    let attr = client
        .put_reader(&shorter[..], "/f", 0o600, true, &mut |_| {})
        .await
        .expect("overwrite");
    assert_eq!(attr.size, shorter.len() as u64);
    let out = dir.path().join("out");
    let n = client.get("/f", &out, &mut |_| {}).await.expect("get");
    assert_eq!(n, shorter.len() as u64);
    assert!(std::fs::read(&out).expect("read local") == shorter);

    // Make a hole in block 1 and a tail past the last block: both read as zeros.
    {
        let mut s = nn.state.lock().expect("lock");
        let f = s.files.get_mut(&attr.ino).expect("file");
        let b0 = f.blocks[0];
        f.blocks = vec![b0, BlockInfo::HOLE];
        f.attr.size = 2 * BLOCK + 100;
    }
    let mut expected = shorter.clone();
    expected.resize(2 * BLOCK as usize + 100, 0);
    let mut out = Vec::new();
    client.cat("/f", &mut out).await.expect("cat with holes");
    assert!(out == expected, "holes read as zeros");
    let mut reader = client.open_reader(attr.ino);
    let got = reader
        .read_at(BLOCK - 10, 40)
        .await
        .expect("read_at over a hole");
    assert!(got[..] == expected[BLOCK as usize - 10..BLOCK as usize + 30]);
}

#[tokio::test]
async fn every_replica_corrupt_is_an_error() {
    let (_nn, dns, client) = cluster(2).await;
    client
        .put_reader(&pattern(1000, 4)[..], "/c", 0o644, false, &mut |_| {})
        .await
        .expect("put");
    for dn in &dns {
        dn.corrupt.store(true, Ordering::SeqCst);
    }
    let mut out = Vec::new();
    let err = client.cat("/c", &mut out).await.expect_err("all corrupt");
    assert!(matches!(err, Error::NoReplica { .. }), "{err}");
    assert_eq!(err.errno(), libc::EIO);
}

#[tokio::test]
async fn a_failing_pipeline_fails_the_put_and_leaves_no_file() {
    let (nn, dns, client) = cluster(2).await;
    dns[0].fail_writes.store(true, Ordering::SeqCst);
    let err = client
        .put_reader(
            &pattern(2 * BLOCK as usize, 5)[..],
            "/bad",
            0o644,
            false,
            &mut |_| {},
        )
        .await
        .expect_err("datanode refuses");
    assert!(matches!(err, Error::Datanode { .. }), "{err}");
    assert!(err.to_string().contains("refuses writes"), "{err}");
    assert!(
        nn.state.lock().expect("lock").files.is_empty(),
        "the new file was removed"
    );
    let err = client.resolve("/bad").await.expect_err("gone");
    assert_eq!(err.errno(), libc::ENOENT);
}
