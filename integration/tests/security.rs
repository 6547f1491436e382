//! The cluster secret at work: a datanode without it cannot join, a REST call without the
//! credential is refused and changes nothing, a forged or expired block token is refused by a
//! datanode, and with the secret everything works end to end.

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use dfs_proto::grpc::data_transfer_client::DataTransferClient;
use dfs_proto::grpc::{
    BlockRef, DataChunk, ReadBlockRequest, WriteBlockHeader, WriteBlockRequest,
    write_block_request::Msg,
};
use dfs_proto::rest::{self, DatanodeState, Endpoint};
use dfs_proto::token::BlockOp;
use dfs_proto::{BlockId, ClusterSecret, Generation, checksum};
use integration::{Cluster, ClusterConfig, Daemon, bin, free_port, poll_until, random_file};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tonic::transport::Channel;

const DEADLINE: Duration = Duration::from_secs(30);

fn p(path: &Path) -> Result<&str> {
    path.to_str().context("utf-8 path")
}

fn small_cluster() -> ClusterConfig {
    ClusterConfig {
        datanodes: 1,
        replication: 1,
        ..ClusterConfig::default()
    }
}

/// A datanode process for `cluster`'s namenodes with `secret_args` (a `--secret-file` or none).
fn stray_datanode(cluster: &Cluster, name: &str, secret_args: &[String]) -> Result<Daemon> {
    let dir = cluster.scratch(name);
    std::fs::create_dir_all(&dir)?;
    let mut args = vec![
        "--data-dir".to_string(),
        dir.display().to_string(),
        "--namenodes".into(),
        cluster.namenodes_arg(),
        "--grpc-listen".into(),
        format!("127.0.0.1:{}", free_port()?),
        "--http-listen".into(),
        format!("127.0.0.1:{}", free_port()?),
        "--heartbeat-interval".into(),
        "200ms".into(),
        "--reserved".into(),
        "0".into(),
    ];
    args.extend_from_slice(secret_args);
    let mut daemon = Daemon::new(
        name.to_string(),
        bin("dfs-datanode")?,
        args,
        cluster.scratch(&format!("{name}.log")),
    );
    daemon.start()?;
    Ok(daemon)
}

fn namenode_log(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.scratch("nn1.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datanode_without_the_secret_cannot_register() -> Result<()> {
    let cluster = Cluster::start(small_cluster()).await?;
    let wrong = cluster.scratch("wrong-secret");
    std::fs::write(&wrong, ClusterSecret::generate_file_text())?;
    let mut with_wrong = stray_datanode(
        &cluster,
        "dn-wrong",
        &["--secret-file".into(), wrong.display().to_string()],
    )?;
    let mut without = stray_datanode(&cluster, "dn-none", &[])?;

    // Both keep trying and say why they are refused; the namenode logs each refusal.
    for dn in [&with_wrong, &without] {
        poll_until(DEADLINE, || async {
            let log = dn.log_tail(200);
            (log.contains("registration failed") && log.contains("PERMISSION_DENIED")).then_some(())
        })
        .await
        .with_context(|| format!("{} never logged its refusal:\n{}", dn.name, dn.log_tail(30)))?;
    }
    let nn_log = namenode_log(&cluster);
    ensure!(
        nn_log.contains("refused a request with a wrong cluster credential")
            && nn_log.contains("refused a request with no cluster credential")
            && nn_log.contains("/v1/datanode/register"),
        "the namenode did not log the refusals:\n{nn_log}"
    );

    // Only the cluster's own datanode is in the report, and the cluster still works.
    let report = cluster.report().await?;
    ensure!(
        report.datanodes.len() == 1 && report.datanodes[0].state == DatanodeState::Live,
        "the report lists {:?}",
        report.datanodes
    );
    ensure!(with_wrong.is_running() && without.is_running());
    let local = cluster.scratch("in.bin");
    random_file(&local, 10_000, 1)?;
    cluster.dfs_ok(&["put", p(&local)?, "/f"])?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_calls_without_the_credential_are_refused_and_change_nothing() -> Result<()> {
    let cluster = Cluster::start(small_cluster()).await?;
    let addr = cluster.namenodes[0].addr.clone();
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mkdir = rest::MkdirRequest {
        parent: dfs_proto::InodeId::ROOT,
        name: "intruder".into(),
        perm: 0o755,
        uid: 0,
        gid: 0,
    };
    let other = ClusterSecret::from_file_bytes(&[0x5a; 32]).context("secret")?;
    let url = |path: &str| format!("http://{addr}{path}");

    let attempts = [
        plain.post(url(rest::Mkdir::PATH)).json(&mkdir),
        plain
            .post(url(rest::Mkdir::PATH))
            .header("authorization", other.authorization())
            .json(&mkdir),
        plain
            .post(url(rest::Mkdir::PATH))
            .header("authorization", "Bearer ")
            .json(&mkdir),
        plain.get(url(rest::ClusterInfo::PATH)),
        plain.get(url(rest::AdminReport::PATH)),
        plain.post(url("/raft/vote")).body("{}"),
        plain.get(url("/no/such/route")),
    ];
    for attempt in attempts {
        let resp = attempt.send().await?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.context("a JSON error body")?;
        ensure!(status == 401, "answered {status}: {body}");
        ensure!(
            body.get("code").and_then(|c| c.as_str()) == Some("PERMISSION_DENIED"),
            "{body}"
        );
    }

    // Metrics and the read-only status page stay public.
    for path in ["/metrics", "/"] {
        let status = plain.get(url(path)).send().await?.status().as_u16();
        ensure!(status == 200, "GET {path} answered {status}");
    }

    // Nothing was created, and the refusals were logged with the caller's address.
    let (status, body) = cluster
        .raw_call::<rest::Resolve>(
            0,
            &rest::ResolveRequest {
                path: "/intruder".into(),
            },
        )
        .await?;
    ensure!(status == 404, "/intruder exists: {status} {body}");
    let log = namenode_log(&cluster);
    ensure!(
        log.contains("refused a request") && log.contains("peer=127.0.0.1:"),
        "no refusal logged with the peer:\n{log}"
    );

    // The CLI with the wrong secret is refused (EACCES, as the CLI words errno codes).
    let wrong = cluster.scratch("wrong-secret");
    std::fs::write(&wrong, ClusterSecret::generate_file_text())?;
    let out = std::process::Command::new(bin("dfs")?)
        .args(["--namenodes", &cluster.namenodes_arg()])
        .args(["--secret-file", p(&wrong)?, "mkdir", "/intruder"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && stderr.contains("Permission denied"),
        "dfs with a wrong secret: {} {stderr}",
        out.status
    );
    Ok(())
}

async fn read_with(
    dn: &mut DataTransferClient<Channel>,
    block: BlockRef,
    token: &str,
) -> Result<Vec<u8>, tonic::Status> {
    let req = ReadBlockRequest {
        block: Some(block),
        offset: 0,
        length: 0,
        access_token: token.to_string(),
    };
    let mut stream = dn.read_block(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await? {
        if let Some(chunk) = msg.chunk {
            out.extend_from_slice(&chunk.data);
        }
    }
    Ok(out)
}

async fn write_with(
    dn: &mut DataTransferClient<Channel>,
    block: BlockRef,
    token: &str,
) -> Result<(), tonic::Status> {
    let data = Bytes::from(vec![7u8; 1000]);
    let msgs = vec![
        WriteBlockRequest {
            msg: Some(Msg::Header(WriteBlockHeader {
                block: Some(block),
                downstream: vec![],
                expected_length: 0,
                access_token: token.to_string(),
                background_copy: false,
            })),
        },
        WriteBlockRequest {
            msg: Some(Msg::Chunk(DataChunk {
                offset: 0,
                crc32c: checksum::checksums(&data),
                data,
            })),
        },
    ];
    dn.write_block(tokio_stream::iter(msgs)).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_expired_block_tokens_are_refused() -> Result<()> {
    let cluster = Cluster::start(small_cluster()).await?;
    let local = cluster.scratch("in.bin");
    random_file(&local, 200_000, 2)?;
    cluster.dfs_ok(&["put", p(&local)?, "/f"])?;
    let blocks = cluster.blocks_of("/f").await?;
    let Some(located) = blocks.first() else {
        bail!("/f has no blocks");
    };
    let token = located
        .token
        .clone()
        .context("the namenode gave no read token")?;
    let (id, generation) = (located.block.id, located.block.generation);
    let block = BlockRef {
        block_id: id.0,
        generation: generation.0,
    };
    let mut dn = DataTransferClient::connect(format!("http://{}", cluster.datanodes[0].grpc_addr))
        .await?
        .max_decoding_message_size(dfs_proto::MAX_GRPC_MESSAGE);

    // The namenode's token reads the block.
    let data = read_with(&mut dn, block, &token).await?;
    ensure!(data == std::fs::read(&local)?, "read back different bytes");

    let key = cluster.secret()?.block_token_key();
    let (body, _) = token.rsplit_once('.').context("a token with a signature")?;
    let forged = format!("{body}.{}", "ab".repeat(32));
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = key.sign(id, generation, &[BlockOp::Read], long_ago);
    let foreign = ClusterSecret::from_file_bytes(&[1u8; 32])
        .context("secret")?
        .block_token_key()
        .sign(
            id,
            generation,
            &[BlockOp::Read],
            SystemTime::now() + Duration::from_secs(600),
        );
    let other_block = key.sign(
        BlockId(id.0 + 1),
        generation,
        &[BlockOp::Read],
        SystemTime::now() + Duration::from_secs(600),
    );
    let refused = [
        ("no token", "", tonic::Code::Unauthenticated),
        (
            "a forged signature",
            forged.as_str(),
            tonic::Code::PermissionDenied,
        ),
        (
            "an expired token",
            expired.as_str(),
            tonic::Code::PermissionDenied,
        ),
        (
            "another cluster's token",
            foreign.as_str(),
            tonic::Code::PermissionDenied,
        ),
        (
            "another block's token",
            other_block.as_str(),
            tonic::Code::PermissionDenied,
        ),
    ];
    for (what, bad, code) in refused {
        let err = read_with(&mut dn, block, bad)
            .await
            .err()
            .with_context(|| format!("a read with {what} was allowed"))?;
        ensure!(err.code() == code, "a read with {what}: {err}");
    }

    // Writes: a read token, a forged and an expired write token are refused; nothing is kept.
    let new_block = BlockRef {
        block_id: 990_001,
        generation: 1,
    };
    let read_only = key.sign(
        BlockId(new_block.block_id),
        Generation(1),
        &[BlockOp::Read],
        SystemTime::now() + Duration::from_secs(600),
    );
    let expired_write = key.sign(
        BlockId(new_block.block_id),
        Generation(1),
        &[BlockOp::Write],
        long_ago,
    );
    let before = cluster.replica_files(0).len();
    for (what, bad) in [
        ("no token", ""),
        ("a read token", read_only.as_str()),
        ("an expired write token", expired_write.as_str()),
        ("a forged token", forged.as_str()),
    ] {
        let err = write_with(&mut dn, new_block, bad)
            .await
            .err()
            .with_context(|| format!("a write with {what} was allowed"))?;
        ensure!(
            matches!(
                err.code(),
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
            ),
            "a write with {what}: {err}"
        );
    }
    ensure!(
        cluster.replica_files(0).len() == before,
        "a refused write left a replica"
    );

    // A valid write token is accepted (the check is not refusing everything).
    let good = cluster.block_token(new_block.block_id, 1, &[BlockOp::Write])?;
    write_with(&mut dn, new_block, &good).await?;
    ensure!(
        cluster.datanodes[0]
            .daemon
            .log_tail(400)
            .contains("refused a block transfer")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_secret_files_go_in_and_come_out_replicated() -> Result<()> {
    // Three datanodes: the pipeline forwards the client's write token to each of them.
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let local = cluster.scratch("in.bin");
    // Several blocks (1 MiB each in the test cluster).
    random_file(&local, 3 * 1024 * 1024 + 12_345, 3)?;
    cluster.dfs_ok(&["put", p(&local)?, "/big.bin"])?;
    let out = cluster.scratch("out.bin");
    cluster.dfs_ok(&["get", "/big.bin", p(&out)?])?;
    ensure!(
        std::fs::read(&local)? == std::fs::read(&out)?,
        "get returned other bytes"
    );
    for located in cluster.blocks_of("/big.bin").await? {
        ensure!(
            located.locations.len() == 3,
            "block {} is on {:?}",
            located.block.id,
            located.locations
        );
    }
    // The library client reads too, with tokens from the namenode.
    let client = cluster.client()?;
    let attr = client.resolve("/big.bin").await?;
    ensure!(attr.size == std::fs::metadata(&local)?.len());
    Ok(())
}
