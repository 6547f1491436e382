//! Fuzz target (proptest) for the datanode's gRPC service: arbitrary WriteBlock headers (block
//! id, generation, expected length, downstream addresses) followed by arbitrary chunks (offsets,
//! lengths, checksums), and arbitrary ReadBlock requests, sent to one running datanode. Every
//! call must end with an answer, a refused write must leave nothing behind, and the datanode must
//! keep serving.
//!
//! Bounded for `make test`; run longer with `PROPTEST_CASES=100000 cargo test -p dfs-datanode
//! --test fuzz` (see docs/SECURITY.md).

mod common;

use bytes::Bytes;
use common::*;
use dfs_proto::checksum::{self, CHECKSUM_CHUNK};
use dfs_proto::grpc::write_block_request::Msg;
use dfs_proto::grpc::{BlockRef, DataChunk, ReadBlockRequest, WriteBlockHeader, WriteBlockRequest};
use proptest::prelude::*;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::runtime::Runtime;

/// One datanode for the whole file, on its own runtime (proptest cases run synchronously).
struct Target {
    rt: Runtime,
    node: TestNode,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let node = rt.block_on(async {
            let dir = tempfile::tempdir().expect("temp dir");
            // 64 MiB of room: the fuzzer cannot fill the disk.
            TestNode::start_with(dir, vec![closed_port().await], |c| {
                c.capacity = Some(64 << 20);
                c.idle_timeout = Duration::from_secs(5);
            })
            .await
        });
        Target { rt, node }
    })
}

/// A chunk: on the grid or anywhere, with good or arbitrary checksums.
fn chunk() -> impl Strategy<Value = DataChunk> {
    (
        prop_oneof![
            (0..8u64).prop_map(|i| i * CHECKSUM_CHUNK as u64),
            any::<u64>(),
        ],
        (0..(3 * CHECKSUM_CHUNK), any::<u8>()),
        any::<bool>(),
        prop::collection::vec(any::<u32>(), 0..4),
    )
        .prop_map(|(offset, (len, seed), good, crcs)| {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
            let crc32c = if good {
                checksum::checksums(&data)
            } else {
                crcs
            };
            DataChunk {
                offset,
                data: Bytes::from(data),
                crc32c,
            }
        })
}

fn header() -> impl Strategy<Value = WriteBlockHeader> {
    (
        prop_oneof![Just(0u64), 1..1000u64, any::<u64>()],
        any::<u64>(),
        prop_oneof![
            Just(0u64),
            0..(4 * CHECKSUM_CHUNK as u64),
            any::<u64>(),
            Just(dfs_proto::MAX_BLOCK_SIZE + 1)
        ],
        prop::collection::vec(
            prop_oneof![
                ".{0,40}",
                Just("127.0.0.1:1".to_string()),
                Just("[::1".to_string())
            ],
            0..3,
        ),
        ".{0,60}",
    )
        .prop_map(
            |(id, generation, expected_length, downstream, access_token)| WriteBlockHeader {
                block: (id != 1).then_some(BlockRef {
                    block_id: id,
                    generation,
                }),
                downstream,
                expected_length,
                access_token,
                background_copy: false,
            },
        )
}

/// The number of cases: `PROPTEST_CASES` when set (a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn arbitrary_writes_are_answered_and_refusals_leave_nothing(
        header in header(),
        chunks in prop::collection::vec(chunk(), 0..4),
        header_first in any::<bool>(),
    ) {
        let t = target();
        let block = header.block;
        let head = WriteBlockRequest { msg: Some(Msg::Header(header)) };
        let mut msgs: Vec<WriteBlockRequest> = chunks
            .into_iter()
            .map(|c| WriteBlockRequest { msg: Some(Msg::Chunk(c)) })
            .collect();
        // The header belongs first; a stream that opens with a chunk must be refused too.
        if header_first {
            msgs.insert(0, head);
        } else {
            msgs.push(head);
        }
        t.rt.block_on(async {
            let mut client = t.node.client().await;
            let result = tokio::time::timeout(Duration::from_secs(60), write(&mut client, msgs))
                .await
                .map_err(|_| TestCaseError::fail("a write went unanswered for 60 s"))?;
            if result.is_err() {
                // A refused write keeps nothing: its temporary files go.
                let tmp = t.node.dir.path().join("tmp");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while std::fs::read_dir(&tmp).map_or(0, |d| d.count()) > 0 {
                    prop_assert!(
                        tokio::time::Instant::now() < deadline,
                        "a refused write of {:?} left temporary files",
                        block
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_reads_are_answered(
        id in prop_oneof![0..1000u64, any::<u64>()],
        generation in any::<u64>(),
        offset in prop_oneof![any::<u64>(), (0..8u64).prop_map(|i| i * CHECKSUM_CHUNK as u64)],
        length in any::<u64>(),
        token in ".{0,40}",
    ) {
        let t = target();
        t.rt.block_on(async {
            let mut client = t.node.client().await;
            let request = ReadBlockRequest {
                block: Some(BlockRef { block_id: id, generation }),
                offset,
                length,
                access_token: token,
            };
            let answered = tokio::time::timeout(Duration::from_secs(60), async {
                // A refusal is an answer too; a stream is read to its end.
                if let Ok(stream) = client.read_block(request).await {
                    let mut stream = stream.into_inner();
                    while let Ok(Some(_)) = stream.message().await {}
                }
            })
            .await;
            prop_assert!(answered.is_ok(), "a read went unanswered for 60 s");
            Ok(())
        })?;
    }
}
