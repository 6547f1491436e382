//! Short-circuit local reads on real daemons: a datanode hands a replica's file to a client of
//! its machine only for a valid read token, refuses everything else with a clear code and keeps
//! serving, and the CLI reads a file without a byte crossing gRPC (or over gRPC when local reads
//! are turned off); a small read through the mount checks only the 4 KiB pages it reads.
//! Reading around a corrupt replica on the local path is in
//! `datanode_failures::flipped_bytes_are_read_around_and_the_bad_replica_replaced`.

use anyhow::{Context, Result, ensure};
use dfs_proto::ErrorCode;
use dfs_proto::local_read::{LocalReadOutcome, LocalReadReply, LocalReadRequest, exchange, frame};
use dfs_proto::rest::LocatedBlock;
use dfs_proto::token::BlockOp;
use dfs_proto::{BlockId, Generation};
use integration::{Cluster, ClusterConfig, bin, random_file};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

fn p(path: &Path) -> Result<&str> {
    path.to_str().context("utf-8 path")
}

/// Sends `bytes` on a new connection to `socket` and reads one reply frame, with the
/// descriptors that came along.
fn ask(socket: &str, bytes: &[u8]) -> Result<(LocalReadReply, Vec<OwnedFd>)> {
    exchange(Path::new(socket), bytes, Duration::from_secs(30))
        .with_context(|| format!("ask {socket}"))
}

fn request(block: BlockId, generation: Generation, token: &str) -> Vec<u8> {
    frame(&LocalReadRequest {
        block,
        generation,
        token: token.to_string(),
    })
}

fn refusal(reply: &LocalReadReply) -> Option<ErrorCode> {
    match &reply.outcome {
        LocalReadOutcome::Refused { code, .. } => Some(*code),
        LocalReadOutcome::Replica { .. } => None,
    }
}

/// The value of the metric line starting with `series` (`name` or `name{labels}`), summed over
/// every datanode of `cluster`.
async fn datanode_metric(cluster: &Cluster, series: &str) -> Result<f64> {
    let mut total = 0.0;
    for dn in &cluster.datanodes {
        let text = cluster
            .http()
            .get(format!("http://{}/metrics", dn.http_addr))
            .send()
            .await?
            .text()
            .await?;
        total += text
            .lines()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.trim().parse::<f64>().unwrap_or(0.0))
            .sum::<f64>();
    }
    Ok(total)
}

async fn first_block(cluster: &Cluster, path: &str) -> Result<(LocatedBlock, String)> {
    let located = cluster
        .blocks_of(path)
        .await?
        .into_iter()
        .next()
        .context("the file has a block")?;
    let socket = located
        .locations
        .first()
        .and_then(|l| l.local_socket.clone())
        .context("the datanode advertises a local read socket")?;
    Ok((located, socket))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datanode_hands_over_a_replica_file_only_for_a_valid_read_token() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let local = cluster.scratch("three.bin");
    random_file(&local, 3 * MIB + 1234, 5)?;
    cluster.dfs_ok(&["put", p(&local)?, "/three.bin"])?;
    let (located, socket) = first_block(&cluster, "/three.bin").await?;
    let (id, generation) = (located.block.id, located.block.generation);
    let token = located.token.clone().context("a read token")?;

    // A valid token: the replica's file, its length and a checksum per 64 KiB piece, and its
    // sidecar with a checksum per 4 KiB page.
    let (reply, fds) = ask(&socket, &request(id, generation, &token))?;
    ensure!(
        reply.datanode == located.locations[0].id,
        "answered by {} instead of {}",
        reply.datanode,
        located.locations[0].id
    );
    let LocalReadOutcome::Replica {
        length,
        crcs,
        pages_at,
    } = &reply.outcome
    else {
        anyhow::bail!("refused: {reply:?}");
    };
    ensure!(*length == located.block.len, "length {length}");
    ensure!(
        crcs.len() == (MIB / (64 * 1024)),
        "{} checksums",
        crcs.len()
    );
    ensure!(fds.len() == 2, "{} descriptors came along", fds.len());
    let mut fds = fds.into_iter().map(std::fs::File::from);
    let (file, sidecar) = (fds.next().context("data")?, fds.next().context("sidecar")?);
    let mut data = vec![0u8; *length as usize];
    file.read_exact_at(&mut data, 0)?;
    let source = std::fs::read(&local)?;
    ensure!(data == source[..MIB], "the handed file holds other bytes");
    ensure!(
        dfs_proto::checksum::checksums(&data) == *crcs,
        "the checksums do not match the data"
    );
    let page = dfs_proto::checksum::CHECKSUM_PAGE;
    let pages = dfs_proto::checksum::read_page_checksums(
        &sidecar,
        pages_at.context("the sidecar has page checksums")?,
        0,
        data.len() / page,
    )?;
    let mut want = Vec::new();
    dfs_proto::checksum::extend_page_checksums(&mut want, 0, &data);
    ensure!(pages == want, "the page checksums do not match the data");

    // Everything else is refused, with no file, and the datanode keeps serving.
    let other_block = cluster.block_token(id.0 + 1, generation.0, &[BlockOp::Read])?;
    let write_only = cluster.block_token(id.0, generation.0, &[BlockOp::Write])?;
    let later = cluster.block_token(id.0, generation.0 + 1, &[BlockOp::Read])?;
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("no token", request(id, generation, ""), ErrorCode::Access),
        (
            "a forged token",
            request(id, generation, "bogus"),
            ErrorCode::Access,
        ),
        (
            "another block's token",
            request(id, generation, &other_block),
            ErrorCode::Access,
        ),
        (
            "a write token",
            request(id, generation, &write_only),
            ErrorCode::Access,
        ),
        (
            "a generation it does not hold",
            request(id, Generation(generation.0 + 1), &later),
            ErrorCode::NotFound,
        ),
        (
            "malformed JSON",
            frame(&"not a request"),
            ErrorCode::Invalid,
        ),
        (
            "an oversized frame",
            u32::MAX.to_le_bytes().to_vec(),
            ErrorCode::Invalid,
        ),
    ];
    for (what, bytes, code) in cases {
        let (reply, fds) = ask(&socket, &bytes)?;
        ensure!(refusal(&reply) == Some(code), "{what}: {reply:?}");
        ensure!(fds.is_empty(), "{what}: a file came with a refusal");
    }
    // A connection that closes halfway through a request costs nothing.
    let mut half = UnixStream::connect(&socket)?;
    half.write_all(&request(id, generation, &token)[..6])?;
    drop(half);
    let (reply, fds) = ask(&socket, &request(id, generation, &token))?;
    ensure!(refusal(&reply).is_none() && !fds.is_empty(), "{reply:?}");
    ensure!(
        datanode_metric(&cluster, r#"dfs_datanode_local_reads_total{result="ok"}"#).await? >= 2.0
    );
    ensure!(
        datanode_metric(
            &cluster,
            r#"dfs_datanode_local_reads_total{result="error"}"#
        )
        .await?
            >= 7.0
    );
    Ok(())
}

/// `dfs get` of `remote` to `out`, with `DFS_LOCAL_READS` set to `local_reads`.
fn get(cluster: &Cluster, remote: &str, out: &Path, local_reads: bool) -> Result<()> {
    let status = Command::new(bin("dfs")?)
        .arg("--namenodes")
        .arg(cluster.namenodes_arg())
        .env("DFS_SECRET_FILE", &cluster.secret_file)
        .env("DFS_LOCAL_READS", local_reads.to_string())
        .args(["get", remote, p(out)?])
        .stdin(Stdio::null())
        .status()?;
    ensure!(status.success(), "dfs get {remote}: {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_the_datanodes_machine_reads_files_without_grpc_unless_told_not_to()
-> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let local = cluster.scratch("five.bin");
    random_file(&local, 5 * MIB + 4321, 9)?;
    cluster.dfs_ok(&["put", p(&local)?, "/five.bin"])?;
    let source = std::fs::read(&local)?;

    let out = cluster.scratch("five.local");
    get(&cluster, "/five.bin", &out, true)?;
    ensure!(
        std::fs::read(&out)? == source,
        "a local read returned other bytes"
    );
    let grpc_bytes = datanode_metric(&cluster, "dfs_datanode_bytes_read_total").await?;
    ensure!(grpc_bytes == 0.0, "{grpc_bytes} bytes went over gRPC");
    let handed =
        datanode_metric(&cluster, r#"dfs_datanode_local_reads_total{result="ok"}"#).await?;
    ensure!(
        handed >= 6.0,
        "{handed} replica files handed over for 6 blocks"
    );

    let out = cluster.scratch("five.grpc");
    get(&cluster, "/five.bin", &out, false)?;
    ensure!(
        std::fs::read(&out)? == source,
        "a gRPC read returned other bytes"
    );
    let grpc_bytes = datanode_metric(&cluster, "dfs_datanode_bytes_read_total").await?;
    ensure!(
        grpc_bytes >= source.len() as f64,
        "only {grpc_bytes} bytes went over gRPC with local reads off"
    );
    Ok(())
}

/// Reads `len` bytes at `offset` of `file`, which the caller opened with read-ahead off.
fn read_at(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_local_read_checks_only_the_pages_it_reads() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let local = cluster.scratch("pages.bin");
    random_file(&local, 2 * MIB + 5000, 13)?;
    cluster.dfs_ok(&["put", p(&local)?, "/pages.bin"])?;
    let source = std::fs::read(&local)?;

    // Damage page 5 of the first block in every replica: no replica can serve it, but the
    // other pages of its 64 KiB piece are intact.
    let page = dfs_proto::checksum::CHECKSUM_PAGE;
    let first = cluster.blocks_of("/pages.bin").await?[0].block;
    let name = format!("blk_{}_{}", first.id, first.generation);
    let mut damaged = 0;
    for i in 0..cluster.datanodes.len() {
        for f in cluster.replica_files(i) {
            if f.file_name().and_then(|n| n.to_str()) == Some(name.as_str()) {
                let file = std::fs::OpenOptions::new().write(true).open(&f)?;
                file.write_all_at(b"DAMAGE", (5 * page + 100) as u64)?;
                damaged += 1;
            }
        }
    }
    ensure!(damaged == 3, "{damaged} replicas of the first block found");

    let mount = integration::mount::Mount::start(&cluster, &[])?;
    let file = std::fs::File::open(mount.path("pages.bin"))?;
    // SAFETY: advice on a descriptor this test owns; no pointers.
    unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
            0,
            libc::POSIX_FADV_RANDOM,
        )
    };
    // Pages of the damaged piece around the damaged page, a read across two pages, the last
    // partial page of the file, a page in the second block: all intact, all read.
    for (offset, len) in [
        (3 * page as u64, page),
        (7 * page as u64 + 3000, 3000),
        (4 * page as u64, page),
        ((2 * MIB + 4096) as u64, 904),
        ((MIB + 40 * page) as u64, page),
    ] {
        let got = read_at(&file, offset, len).with_context(|| {
            format!(
                "read {len} bytes at {offset}:\n{}\n{}",
                mount.log_tail(),
                cluster.logs_for_failure()
            )
        })?;
        let at = offset as usize;
        ensure!(
            got == source[at..at + len],
            "wrong bytes at {offset} ({len})"
        );
    }
    // The damaged page itself fails its checksum on every replica: an I/O error, never the
    // damaged bytes.
    let err = read_at(&file, 5 * page as u64, page).err();
    ensure!(
        err.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EIO),
        "reading the damaged page answered {err:?}"
    );
    Ok(())
}
