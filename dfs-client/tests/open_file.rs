//! Random-access open files against the fake namenode and datanodes: sequential and random
//! writes, overwrite in place (only touched blocks get a new generation), appends, sparse
//! writes, truncate while open, reads of unflushed data, and the dirty-memory bound. Each test
//! keeps a local model of the file and compares reads with it.

mod fake;

use dfs_client::{Client, ClientConfig, OpenFile};
use dfs_proto::rest::BlockInfo;
use dfs_proto::{ErrorCode, InodeId, Name};
use fake::{FakeDatanode, FakeNamenode};
use std::sync::Arc;
use std::time::Duration;

const BLOCK: u64 = 256 * 1024;

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

async fn cluster() -> (FakeNamenode, Client) {
    let mut dns = Vec::new();
    for _ in 0..2 {
        dns.push(FakeDatanode::start().await);
    }
    let nn = FakeNamenode::start(BLOCK, &dns).await;
    let mut config = ClientConfig::new(vec![nn.addr.clone()]);
    config.failover_timeout = Duration::from_secs(5);
    (nn, Client::new(config).expect("client"))
}

/// Creates an empty file and opens it for writing.
async fn new_file(client: &Client, name: &str) -> Arc<OpenFile> {
    let w = client
        .create_file(InodeId::ROOT, &Name::new(name).expect("name"), 0o644)
        .await
        .expect("create");
    let attr = w.close().await.expect("close empty");
    client
        .open_file(attr.ino, true, false)
        .await
        .expect("open for write")
}

/// Writes `data` at `off` to both the file and the model.
async fn write(f: &OpenFile, model: &mut Vec<u8>, off: usize, data: &[u8]) {
    let n = f.write(off as u64, data).await.expect("write");
    assert_eq!(n as usize, data.len());
    if model.len() < off + data.len() {
        model.resize(off + data.len(), 0);
    }
    model[off..off + data.len()].copy_from_slice(data);
}

/// Reads the whole file through `f` in uneven pieces and compares with the model.
async fn check_open(f: &OpenFile, model: &[u8]) {
    assert_eq!(
        f.attr().size,
        model.len() as u64,
        "size seen through the open file"
    );
    let mut got = Vec::new();
    loop {
        let piece = f.read(got.len() as u64, 100_000).await.expect("read");
        if piece.is_empty() {
            break;
        }
        got.extend_from_slice(&piece);
    }
    assert!(got == model, "open-file read differs from the model");
}

/// Reads the committed file as another process would.
async fn check_committed(client: &Client, ino: InodeId, model: &[u8]) {
    let fresh = client.open_file(ino, false, false).await.expect("open");
    check_open(&fresh, model).await;
}

fn gens(blocks: &[BlockInfo]) -> Vec<u64> {
    blocks.iter().map(|b| b.generation.0).collect()
}

#[tokio::test]
async fn sequential_write_then_read_back() {
    let (nn, client) = cluster().await;
    let f = new_file(&client, "seq").await;
    let mut model = Vec::new();
    let data = pattern(3 * BLOCK as usize + 12_345, 1);
    for piece in data.chunks(4096 * 7) {
        let off = model.len();
        write(&f, &mut model, off, piece).await;
    }
    check_open(&f, &model).await;
    let attr = f.close().await.expect("close");
    assert_eq!(attr.size, model.len() as u64);
    let (_, blocks) = nn.file(f.ino());
    assert_eq!(blocks.len(), 4);
    check_committed(&client, f.ino(), &model).await;
}

#[tokio::test]
async fn overwrite_in_the_middle_rewrites_only_touched_blocks() {
    let (nn, client) = cluster().await;
    let f = new_file(&client, "mid").await;
    let mut model = Vec::new();
    write(&f, &mut model, 0, &pattern(4 * BLOCK as usize, 2)).await;
    f.flush().await.expect("flush");
    let (_, before) = nn.file(f.ino());
    // Inside block 1 only, then across the boundary of blocks 2 and 3.
    write(&f, &mut model, BLOCK as usize + 100, &pattern(5000, 3)).await;
    write(&f, &mut model, 3 * BLOCK as usize - 10, &pattern(20, 4)).await;
    check_open(&f, &model).await;
    f.flush().await.expect("flush");
    let (_, after) = nn.file(f.ino());
    assert_eq!(after.len(), 4);
    assert_eq!(
        after[0], before[0],
        "untouched block 0 keeps its generation"
    );
    for i in 1..4 {
        assert_eq!(after[i].id, before[i].id, "block {i} keeps its id");
        assert_ne!(
            after[i].generation, before[i].generation,
            "block {i} rewritten"
        );
    }
    assert_eq!(gens(&after)[0], gens(&before)[0]);
    check_committed(&client, f.ino(), &model).await;
    f.close().await.expect("close");
}

#[tokio::test]
async fn append_and_sparse_write_past_the_end() {
    let (_nn, client) = cluster().await;
    let f = new_file(&client, "app").await;
    let mut model = Vec::new();
    write(&f, &mut model, 0, &pattern(BLOCK as usize / 2 + 7, 5)).await;
    f.close().await.expect("close");
    // Reopen and append (the caller passes offset = size), into a partial block.
    let f = client
        .open_file(f.ino(), true, false)
        .await
        .expect("reopen");
    let size = f.attr().size as usize;
    write(&f, &mut model, size, &pattern(BLOCK as usize, 6)).await;
    // A sparse write two blocks further on: zeros in between.
    write(&f, &mut model, 4 * BLOCK as usize + 3, b"tail").await;
    check_open(&f, &model).await;
    f.close().await.expect("close");
    check_committed(&client, f.ino(), &model).await;
}

#[tokio::test]
async fn truncate_down_and_up_while_open() {
    let (_nn, client) = cluster().await;
    let f = new_file(&client, "trunc").await;
    let mut model = Vec::new();
    write(&f, &mut model, 0, &pattern(3 * BLOCK as usize, 7)).await;
    f.flush().await.expect("flush");
    write(&f, &mut model, 10, b"dirty").await;
    let cut = BLOCK as usize + 1000;
    f.set_len(cut as u64).await.expect("truncate down");
    model.truncate(cut);
    check_open(&f, &model).await;
    let grow = 2 * BLOCK as usize + 5;
    f.set_len(grow as u64).await.expect("truncate up");
    model.resize(grow, 0);
    check_open(&f, &model).await;
    f.flush().await.expect("flush");
    check_committed(&client, f.ino(), &model).await;
    // With nothing unflushed, a truncate goes straight to the namenode.
    f.set_len(100).await.expect("clean truncate");
    model.truncate(100);
    check_committed(&client, f.ino(), &model).await;
    f.close().await.expect("close");
}

#[tokio::test]
async fn reads_see_unflushed_writes_and_others_do_not() {
    let (_nn, client) = cluster().await;
    let f = new_file(&client, "own").await;
    let mut model = Vec::new();
    write(&f, &mut model, 0, &pattern(BLOCK as usize + 10, 8)).await;
    f.flush().await.expect("flush");
    let committed = model.clone();
    write(&f, &mut model, 50, b"unflushed bytes").await;
    let size = model.len();
    write(&f, &mut model, size, &pattern(1000, 9)).await;
    check_open(&f, &model).await;
    check_committed(&client, f.ino(), &committed).await;
    f.close().await.expect("close");
    check_committed(&client, f.ino(), &model).await;
}

#[tokio::test]
async fn dirty_memory_bound_forces_an_early_commit() {
    let (nn, client) = cluster().await;
    let f = new_file(&client, "bound").await;
    let mut model = Vec::new();
    write(&f, &mut model, 0, &pattern(2 * BLOCK as usize, 10)).await;
    f.flush().await.expect("flush");
    let commits = nn.state.lock().expect("lock").commits;
    f.set_dirty_limit(100_000);
    // Random small writes, backwards, so none is sequential.
    for i in (0..40).rev() {
        write(&f, &mut model, i * 12_000, &pattern(5000, 11 + i as u32)).await;
    }
    let early = nn.state.lock().expect("lock").commits - commits;
    assert!(early >= 1, "the dirty bound forced no commit");
    check_open(&f, &model).await;
    f.close().await.expect("close");
    check_committed(&client, f.ino(), &model).await;
}

#[tokio::test]
async fn o_trunc_empties_the_file_and_readers_cannot_write() {
    let (_nn, client) = cluster().await;
    let f = new_file(&client, "otrunc").await;
    let mut model = Vec::new();
    write(&f, &mut model, 0, &pattern(1000, 12)).await;
    f.close().await.expect("close");
    let r = client
        .open_file(f.ino(), false, false)
        .await
        .expect("open ro");
    let err = r.write(0, b"x").await.expect_err("read-only write");
    assert_eq!(err.code(), Some(ErrorCode::BadFd));
    let t = client
        .open_file(f.ino(), true, true)
        .await
        .expect("open trunc");
    assert_eq!(t.attr().size, 0);
    let mut model = Vec::new();
    write(&t, &mut model, 0, b"new").await;
    t.close().await.expect("close");
    r.make_writable().await.expect("upgrade");
    check_open(&r, &model).await;
    r.close().await.expect("close");
}

#[tokio::test]
async fn random_ops_match_a_model() {
    let (_nn, client) = cluster().await;
    let f = new_file(&client, "rand").await;
    let mut model = Vec::new();
    let mut x: u64 = 42;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for step in 0..60u32 {
        match next(10) {
            0 => {
                let size = next(4 * BLOCK) as usize;
                f.set_len(size as u64).await.expect("set_len");
                model.resize(size, 0);
            }
            1 => {
                f.flush().await.expect("flush");
            }
            2..=4 => {
                let off = model.len();
                let len = next(BLOCK) as usize + 1;
                write(&f, &mut model, off, &pattern(len, step)).await;
            }
            _ => {
                let off = next(4 * BLOCK) as usize;
                let len = next(BLOCK / 2) as usize + 1;
                write(&f, &mut model, off, &pattern(len, step)).await;
            }
        }
        if step % 10 == 9 {
            check_open(&f, &model).await;
        }
    }
    f.close().await.expect("close");
    check_committed(&client, f.ino(), &model).await;
}

/// A sequential reader is served by a stream running ahead of it: reads sent together and
/// served out of order, holes and a short last block, and a write in the middle of a run (and
/// after its commit) all read what the model holds.
#[tokio::test]
async fn sequential_reads_out_of_order_and_around_a_write() {
    const PIECE: u64 = 48 * 1024;
    let (_nn, client) = cluster().await;
    let f = new_file(&client, "seqrd").await;
    let mut model = Vec::new();
    write(&f, &mut model, 0, &pattern(BLOCK as usize + 1000, 11)).await;
    // A hole of more than a block, then a short last block.
    write(&f, &mut model, 3 * BLOCK as usize + 5, &pattern(5000, 12)).await;
    f.close().await.expect("close");

    let r = client.open_file(f.ino(), false, false).await.expect("open");
    let mut off = 0;
    while off < model.len() as u64 {
        // `join!` polls the later read first: it is served before the earlier one.
        let (later, earlier) =
            tokio::join!(r.read(off + PIECE, PIECE as u32), r.read(off, PIECE as u32));
        for (at, piece) in [(off, earlier), (off + PIECE, later)] {
            let piece = piece.expect("read");
            let want =
                &model[(at as usize).min(model.len())..((at + PIECE) as usize).min(model.len())];
            assert!(piece[..] == *want, "read at {at} differs from the model");
        }
        off += 2 * PIECE;
    }

    // A writer reading its file sequentially, writing ahead of itself, then committing.
    let w = client
        .open_file(f.ino(), true, false)
        .await
        .expect("open for write");
    let mut got = Vec::new();
    for round in 0..2u32 {
        got.clear();
        while (got.len() as u64) < model.len() as u64 {
            let at = got.len();
            if at as u64 == 3 * PIECE {
                let ahead = at + 2 * PIECE as usize;
                write(&w, &mut model, ahead, &pattern(1000, 20 + round)).await;
            }
            let piece = w.read(at as u64, PIECE as u32).await.expect("read");
            assert!(!piece.is_empty(), "short file at {at}");
            got.extend_from_slice(&piece);
        }
        assert!(
            got == model,
            "round {round}: sequential read differs from the model"
        );
        w.flush().await.expect("flush");
    }
    w.close().await.expect("close");
    check_committed(&client, f.ino(), &model).await;
}
