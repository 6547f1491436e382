//! Bad input from the network gets a clear error, changes nothing, and crashes nothing: names,
//! paths, unknown inodes, conflicting namespace operations, malformed and oversized JSON at the
//! namenode; unknown blocks, stale generations and corrupt chunks at a datanode.

use anyhow::{Context, Result};
use bytes::Bytes;
use dfs_proto::grpc::data_transfer_client::DataTransferClient;
use dfs_proto::grpc::{
    BlockRef, DataChunk, ReadBlockRequest, WriteBlockHeader, WriteBlockRequest,
    write_block_request::Msg,
};
use dfs_proto::rest::{self, Endpoint, FileKind};
use dfs_proto::token::BlockOp;
use dfs_proto::{InodeId, checksum};
use integration::{Cluster, ClusterConfig};

fn code(body: &serde_json::Value) -> &str {
    body.get("code")
        .and_then(|c| c.as_str())
        .unwrap_or("<none>")
}

async fn mkdir(cluster: &Cluster, parent: InodeId, name: &str) -> Result<(u16, serde_json::Value)> {
    cluster
        .raw_call::<rest::Mkdir>(
            0,
            &rest::MkdirRequest {
                parent,
                name: name.to_string(),
                perm: 0o755,
                uid: 0,
                gid: 0,
            },
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namenode_refuses_bad_requests_and_stays_up() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig {
        datanodes: 1,
        replication: 1,
        ..ClusterConfig::default()
    })
    .await?;

    // Names.
    let long = "x".repeat(256);
    for (name, want) in [
        ("", "EINVAL"),
        (".", "EINVAL"),
        ("..", "EINVAL"),
        ("a/b", "EINVAL"),
        ("a\0b", "EINVAL"),
        (long.as_str(), "ENAMETOOLONG"),
    ] {
        let (status, body) = mkdir(&cluster, InodeId::ROOT, name).await?;
        assert_eq!(code(&body), want, "mkdir {name:?}: {status} {body}");
        assert!((400..500).contains(&status), "{status}");
    }
    // A 255-byte name is fine.
    let (status, body) = mkdir(&cluster, InodeId::ROOT, &"y".repeat(255)).await?;
    assert_eq!(status, 200, "{body}");

    // Paths over 4096 bytes.
    let path = format!("/{}", "d/".repeat(2100));
    let (_, body) = cluster
        .raw_call::<rest::Resolve>(0, &rest::ResolveRequest { path })
        .await?;
    assert_eq!(code(&body), "ENAMETOOLONG", "{body}");

    // Unknown inodes.
    let (status, body) = cluster
        .raw_call::<rest::GetAttr>(
            0,
            &rest::InodeRequest {
                ino: InodeId(987_654),
            },
        )
        .await?;
    assert_eq!((status, code(&body)), (404, "ENOENT"), "{body}");
    let (_, body) = mkdir(&cluster, InodeId(987_654), "x").await?;
    assert_eq!(code(&body), "ENOENT", "{body}");

    // Create over an existing name.
    let (status, body) = mkdir(&cluster, InodeId::ROOT, "dir").await?;
    assert_eq!(status, 200, "{body}");
    let dir: rest::Attr = serde_json::from_value(body)?;
    let (_, body) = mkdir(&cluster, InodeId::ROOT, "dir").await?;
    assert_eq!(code(&body), "EEXIST", "{body}");
    let (_, body) = cluster
        .raw_call::<rest::Create>(
            0,
            &rest::CreateRequest {
                parent: InodeId::ROOT,
                name: "dir".into(),
                kind: FileKind::File,
                perm: 0o644,
                uid: 0,
                gid: 0,
                lease: None,
            },
        )
        .await?;
    assert_eq!(code(&body), "EEXIST", "{body}");

    // rmdir of a non-empty directory.
    let (status, body) = mkdir(&cluster, dir.ino, "child").await?;
    assert_eq!(status, 200, "{body}");
    let (_, body) = cluster
        .raw_call::<rest::Rmdir>(
            0,
            &rest::EntryRequest {
                parent: InodeId::ROOT,
                name: "dir".into(),
            },
        )
        .await?;
    assert_eq!(code(&body), "ENOTEMPTY", "{body}");

    // Rename of a directory into itself.
    let (_, body) = cluster
        .raw_call::<rest::Rename>(
            0,
            &rest::RenameRequest {
                parent: InodeId::ROOT,
                name: "dir".into(),
                new_parent: dir.ino,
                new_name: "inside".into(),
                noreplace: false,
                exchange: false,
            },
        )
        .await?;
    assert_eq!(code(&body), "EINVAL", "{body}");

    // Malformed and oversized JSON get a JSON error, not a plain-text one.
    let http = cluster.http();
    let url = format!("http://{}{}", cluster.namenodes[0].addr, rest::Mkdir::PATH);
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"parent\": 1, \"name\": ")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.context("malformed JSON answer is JSON")?;
    assert_eq!(code(&body), "EINVAL", "{body}");
    let huge = format!(
        "{{\"parent\":1,\"name\":\"{}\",\"perm\":493,\"uid\":0,\"gid\":0}}",
        "z".repeat(64 * 1024 * 1024)
    );
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    if let Ok(resp) = resp {
        // The namenode may also cut the connection once the limit is passed.
        assert_eq!(resp.status().as_u16(), 413);
        let body: serde_json::Value = resp.json().await?;
        assert_eq!(code(&body), "E2BIG", "{body}");
    }

    // Nothing above changed the namespace beyond the two good mkdirs, and the namenode is up.
    let (status, body) = cluster
        .raw_call::<rest::ReadDir>(
            0,
            &rest::ReadDirRequest {
                ino: InodeId::ROOT,
                after: None,
                limit: None,
            },
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let listing: rest::ReadDirResponse = serde_json::from_value(body)?;
    let names: Vec<&str> = listing.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["dir", "y".repeat(255).as_str()]);
    Ok(())
}

fn header(cluster: &Cluster, block_id: u64, generation: u64) -> Result<WriteBlockRequest> {
    let token = cluster.block_token(block_id, generation, &[BlockOp::Write])?;
    Ok(WriteBlockRequest {
        msg: Some(Msg::Header(WriteBlockHeader {
            block: Some(BlockRef {
                block_id,
                generation,
            }),
            downstream: vec![],
            expected_length: 0,
            access_token: token,
            background_copy: false,
        })),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datanode_refuses_bad_blocks_and_stays_up() -> Result<()> {
    let mut cluster = Cluster::start(ClusterConfig {
        datanodes: 1,
        replication: 1,
        ..ClusterConfig::default()
    })
    .await?;
    let url = format!("http://{}", cluster.datanodes[0].grpc_addr);
    let mut dn = DataTransferClient::connect(url)
        .await?
        .max_decoding_message_size(dfs_proto::MAX_GRPC_MESSAGE)
        .max_encoding_message_size(dfs_proto::MAX_GRPC_MESSAGE);

    // A corrupt chunk is refused and nothing is stored.
    let data = Bytes::from(vec![5u8; 100_000]);
    let mut crcs = checksum::checksums(&data);
    crcs[1] ^= 1;
    let msgs = vec![
        header(&cluster, 900_001, 1)?,
        WriteBlockRequest {
            msg: Some(Msg::Chunk(DataChunk {
                offset: 0,
                data: data.clone(),
                crc32c: crcs,
            })),
        },
    ];
    let err = dn
        .write_block(tokio_stream::iter(msgs))
        .await
        .expect_err("corrupt chunk must be refused");
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err}");
    assert!(cluster.replica_files(0).is_empty());

    // A chunk before any header is refused.
    let msgs = vec![WriteBlockRequest {
        msg: Some(Msg::Chunk(DataChunk {
            offset: 0,
            crc32c: checksum::checksums(&data),
            data: data.clone(),
        })),
    }];
    let err = dn
        .write_block(tokio_stream::iter(msgs))
        .await
        .expect_err("chunk without header");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

    // A good block is stored; then reading an unknown id or a stale generation is NOT_FOUND.
    let msgs = vec![
        header(&cluster, 900_002, 5)?,
        WriteBlockRequest {
            msg: Some(Msg::Chunk(DataChunk {
                offset: 0,
                crc32c: checksum::checksums(&data),
                data: data.clone(),
            })),
        },
    ];
    dn.write_block(tokio_stream::iter(msgs)).await?;
    for (id, generation) in [(900_003, 1), (900_002, 4)] {
        let req = ReadBlockRequest {
            block: Some(BlockRef {
                block_id: id,
                generation,
            }),
            offset: 0,
            length: 0,
            access_token: cluster.block_token(id, generation, &[BlockOp::Read])?,
        };
        let result = match dn.read_block(req).await {
            Ok(resp) => resp.into_inner().message().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let err = result.expect_err("unknown replica must be refused");
        assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    }
    assert!(cluster.datanodes[0].daemon.is_running());
    Ok(())
}
