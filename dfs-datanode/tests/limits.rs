//! A datanode's limits against hostile or broken peers, in process: a gRPC connection that says
//! nothing is closed after the idle timeout, a write stream that stalls is cut off, a block
//! longer than the largest block is refused, and writes stop at the reserve with
//! `RESOURCE_EXHAUSTED` (also when the writer does not announce a length), leaving nothing.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tonic::Code;

const IDLE: Duration = Duration::from_secs(2);

async fn node_with(tweak: impl FnOnce(&mut dfs_datanode::Config)) -> TestNode {
    let dir = tempfile::tempdir().expect("temp dir");
    TestNode::start_with(dir, vec![closed_port().await], tweak).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_grpc_peer_is_disconnected() {
    let node = node_with(|c| c.idle_timeout = IDLE).await;
    let mut silent = tokio::net::TcpStream::connect(&node.grpc_addr)
        .await
        .expect("connect");
    // The server's HTTP/2 settings may arrive; then the connection must end (EOF or reset).
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 256];
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a silent peer still connected after 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_write_stream_is_cut_off_and_nothing_kept() {
    let node = node_with(|c| c.idle_timeout = IDLE).await;
    let mut client = node.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let data = pattern(dfs_proto::TRANSFER_CHUNK, 3);
    tx.send(header(7, 1, &[], 0)).await.expect("send header");
    tx.send(chunk_msg(0, &data)).await.expect("send chunk");
    // `tx` stays open and silent: the stream neither ends nor continues.
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        client.write_block(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
    .await
    .expect("the datanode answers a stalled stream within 60 s");
    let status = result.expect_err("a stalled write is refused");
    assert!(
        matches!(
            status.code(),
            Code::DeadlineExceeded | Code::Cancelled | Code::Unavailable | Code::Unknown
        ),
        "{status:?}"
    );
    drop(tx);
    eventually("nothing of the stalled write is kept", || async {
        node.leftovers(7) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_beyond_the_largest_block_is_invalid() {
    let node = node_with(|_| {}).await;
    let mut client = node.client().await;
    let status = write(
        &mut client,
        vec![header(8, 1, &[], dfs_proto::MAX_BLOCK_SIZE + 1)],
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("largest block"), "{status:?}");
    assert_eq!(node.leftovers(8), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_stop_at_the_reserve_with_resource_exhausted() {
    // Capacity capped at 1 MiB: the "disk" is 1 MiB above the reserve.
    let node = node_with(|c| c.capacity = Some(1 << 20)).await;
    let mut client = node.client().await;

    // An announced length beyond the room left is refused before any byte is stored.
    let big = pattern(2 << 20, 5);
    let status = write(&mut client, block_messages(9, 1, &[], &big))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(node.leftovers(9), 0);

    // A writer that announces no length is stopped as the block outgrows the room.
    let mut msgs = block_messages(10, 1, &[], &big);
    msgs[0] = header(10, 1, &[], 0);
    let status = write(&mut client, msgs).await.expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    eventually("nothing of the refused write is kept", || async {
        node.leftovers(10) == 0
    })
    .await;

    // What fits is stored, announced or not.
    let small = pattern(256 * 1024, 6);
    let mut msgs = block_messages(11, 1, &[], &small);
    msgs[0] = header(11, 1, &[], 0);
    let response = write(&mut client, msgs).await.expect("a block that fits");
    assert_eq!(response.length, small.len() as u64);
    assert_eq!(
        read(&mut client, 11, 1, 0, 0).await.expect("read back"),
        small
    );
}
