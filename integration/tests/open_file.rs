//! Random-access open files and user xattrs against real daemons (one namenode, three
//! datanodes, 1 MiB blocks): overwrite in the middle, append, sparse write, truncate, reads of
//! unflushed data, and xattr modes and errors.

use anyhow::Result;
use dfs_proto::rest::XattrMode;
use dfs_proto::{ErrorCode, InodeId, Name};
use integration::{Cluster, ClusterConfig};

const MIB: usize = 1024 * 1024;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn put(model: &mut Vec<u8>, off: usize, data: &[u8]) {
    if model.len() < off + data.len() {
        model.resize(off + data.len(), 0);
    }
    model[off..off + data.len()].copy_from_slice(data);
}

async fn read_all(f: &dfs_client::OpenFile) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let piece = f.read(out.len() as u64, 1 << 20).await?;
        if piece.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&piece);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_writes_and_xattrs_on_real_daemons() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let client = cluster.client()?;
    let w = client
        .create_file(InodeId::ROOT, &Name::new("f")?, 0o644)
        .await?;
    let ino = w.close().await?.ino;

    let f = client.open_file(ino, true, false).await?;
    let mut model = Vec::new();
    let data = pattern(3 * MIB + 1000, 1);
    f.write(0, &data).await?;
    put(&mut model, 0, &data);
    f.flush().await?;
    let before = client.blocks(ino).await?;

    f.write(MIB as u64 + 5, b"middle").await?;
    put(&mut model, MIB + 5, b"middle");
    let end = model.len();
    f.write(end as u64, b"appended").await?;
    put(&mut model, end, b"appended");
    f.write(5 * MIB as u64, b"sparse").await?;
    put(&mut model, 5 * MIB, b"sparse");
    assert!(read_all(&f).await? == model, "own unflushed writes");
    f.close().await?;

    let after = client.blocks(ino).await?;
    assert_eq!(
        after.blocks[0].block, before.blocks[0].block,
        "block 0 untouched"
    );
    assert_ne!(
        after.blocks[1].block, before.blocks[1].block,
        "block 1 rewritten"
    );
    let r = client.open_file(ino, false, false).await?;
    assert!(read_all(&r).await? == model, "committed contents");

    let t = client.open_file(ino, true, false).await?;
    t.set_len(MIB as u64 + 8).await?;
    model.truncate(MIB + 8);
    t.close().await?;
    let r = client.open_file(ino, false, false).await?;
    assert!(read_all(&r).await? == model, "after truncate");

    client
        .set_xattr(ino, "user.a", b"1", XattrMode::Create)
        .await?;
    assert_eq!(client.get_xattr(ino, "user.a").await?, b"1");
    assert_eq!(client.list_xattr(ino).await?, ["user.a"]);
    let e = client
        .set_xattr(ino, "user.a", b"2", XattrMode::Create)
        .await
        .expect_err("exists");
    assert_eq!(e.code(), Some(ErrorCode::Exists));
    let e = client
        .set_xattr(ino, "trusted.a", b"2", XattrMode::Either)
        .await
        .expect_err("not user");
    assert_eq!(e.errno(), libc::ENOTSUP);
    client.remove_xattr(ino, "user.a").await?;
    let e = client.get_xattr(ino, "user.a").await.expect_err("removed");
    assert_eq!(e.errno(), libc::ENODATA);
    Ok(())
}
