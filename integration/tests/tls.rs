//! The TLS option: a cluster whose namenode and datanodes serve REST and gRPC over TLS with
//! certificates of a test CA (made here with rcgen) stores and returns a multi-block file
//! through the `dfs` CLI and a mount, and refuses what is not TLS or does not trust that CA.

use anyhow::{Context, Result, ensure};
use dfs_proto::grpc::data_transfer_client::DataTransferClient;
use dfs_proto::grpc::{BlockRef, ReadBlockRequest};
use dfs_proto::rest::{self, Endpoint};
use integration::mount::Mount;
use integration::{Cluster, ClusterConfig, TlsFiles, random_file};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn p(path: &Path) -> Result<&str> {
    path.to_str().context("utf-8 path")
}

/// Writes `<name>-ca.pem` and, signed by that CA, `<name>.pem` / `<name>.key` for 127.0.0.1
/// and localhost into `dir`.
fn make_pki(dir: &Path, name: &str) -> Result<TlsFiles> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, format!("dfs test CA {name}"));
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, format!("dfs test {name}"));
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer)?;

    let path = |file: String| -> PathBuf { dir.join(file) };
    let files = TlsFiles {
        ca: path(format!("{name}-ca.pem")),
        cert: path(format!("{name}.pem")),
        key: path(format!("{name}.key")),
    };
    std::fs::write(&files.ca, issuer.pem())?;
    std::fs::write(&files.cert, cert.pem())?;
    std::fs::write(&files.key, key.serialize_pem())?;
    Ok(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_tls_clients_and_refuses_the_rest() -> Result<()> {
    let pki = tempfile::tempdir()?;
    let tls = make_pki(pki.path(), "cluster")?;
    let stranger = make_pki(pki.path(), "stranger")?;
    let cluster = Cluster::start(ClusterConfig {
        tls: Some(tls.clone()),
        ..ClusterConfig::default()
    })
    .await?;

    // A file of several blocks (1 MiB blocks), written through a 3-datanode pipeline and read
    // back, all over TLS.
    let local = cluster.scratch("in.bin");
    random_file(&local, 3 * 1024 * 1024 + 12_345, 7)?;
    cluster.dfs_ok(&["put", p(&local)?, "/secure.bin"])?;
    let out = cluster.scratch("out.bin");
    cluster.dfs_ok(&["get", "/secure.bin", p(&out)?])?;
    ensure!(
        std::fs::read(&local)? == std::fs::read(&out)?,
        "the file read back differs from the one written"
    );
    // The mount (given the CA through DFS_TLS_CA by the harness) reads it and writes another.
    let mount = Mount::start(&cluster, &[])?;
    let through_mount =
        std::fs::read(mount.path("/secure.bin")).with_context(|| mount.log_tail())?;
    ensure!(
        through_mount == std::fs::read(&local)?,
        "the mount read different bytes"
    );
    std::fs::write(mount.path("/from-mount.txt"), b"over TLS\n")
        .with_context(|| mount.log_tail())?;
    drop(mount);
    ensure!(cluster.dfs_ok(&["cat", "/from-mount.txt"])? == "over TLS\n");

    let client = cluster.client()?;
    let ino = client.stat("/secure.bin").await?.ino;
    let blocks = client.blocks(ino).await?.blocks;
    ensure!(blocks.len() == 4, "4 blocks expected, got {}", blocks.len());

    let nn = cluster.namenodes[0].addr.clone();
    let secret = cluster.secret()?;

    // Plain HTTP to the namenode gets no answer, with or without the credential.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let sent = plain
        .get(format!("http://{nn}{}", rest::ClusterInfo::PATH))
        .header("authorization", secret.authorization())
        .send()
        .await;
    ensure!(
        sent.is_err(),
        "plain HTTP to a TLS namenode was answered: {sent:?}"
    );

    // A client trusting another CA refuses the namenode's certificate: raw HTTPS, the client
    // library and the CLI alike.
    let other_ca = dfs_tls::ClientTls::load(&stranger.ca)?;
    let doubting = dfs_tls::http_client(Some(&other_ca))
        .timeout(Duration::from_secs(10))
        .build()?;
    let sent = doubting
        .get(format!("https://{nn}{}", rest::ClusterInfo::PATH))
        .header("authorization", secret.authorization())
        .send()
        .await;
    ensure!(
        sent.is_err(),
        "a namenode certificate from another CA was accepted: {sent:?}"
    );
    let mut config = dfs_client::ClientConfig::new(vec![nn.clone()]);
    config.secret_file = Some(cluster.secret_file.clone());
    config.tls_ca = Some(stranger.ca.clone());
    config.failover_timeout = Duration::from_secs(3);
    let stat = dfs_client::Client::new(config)?.stat("/secure.bin").await;
    ensure!(
        stat.is_err(),
        "the client library trusted a certificate from another CA"
    );
    // The CLI, configured by a client.toml naming the other CA (`tls_ca`, relative to the file).
    let client_toml = pki.path().join("client.toml");
    std::fs::write(
        &client_toml,
        format!(
            "namenodes = [\"{nn}\"]\nfailover_timeout_ms = 3000\nsecret_file = {:?}\n\
             tls_ca = \"stranger-ca.pem\"\n",
            p(&cluster.secret_file)?
        ),
    )?;
    let cli = std::process::Command::new(integration::bin("dfs")?)
        .args(["ls", "/"])
        .env("DFS_CONFIG", &client_toml)
        .env_remove("DFS_NAMENODES")
        .env_remove("DFS_SECRET_FILE")
        .env_remove("DFS_TLS_CA")
        .stdin(std::process::Stdio::null())
        .output()?;
    ensure!(
        !cli.status.success(),
        "`dfs ls` trusted a certificate from another CA: {}",
        String::from_utf8_lossy(&cli.stdout)
    );

    // The datanodes' gRPC port takes TLS only, and only from clients that trust its CA.
    let block = &blocks[0];
    let read = ReadBlockRequest {
        block: Some(BlockRef {
            block_id: block.block.id.0,
            generation: block.block.generation.0,
        }),
        offset: 0,
        length: 1,
        access_token: block.token.clone().context("a read token")?,
    };
    let dn = &cluster.datanodes[0].grpc_addr;
    for tls in [None, Some(&other_ca)] {
        let channel = dfs_tls::grpc_endpoint(dn, tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await;
        if let Ok(channel) = channel {
            let answer = DataTransferClient::new(channel)
                .read_block(read.clone())
                .await;
            ensure!(
                answer.is_err(),
                "a datanode answered a read over {}",
                if tls.is_some() {
                    "TLS with another CA"
                } else {
                    "plain gRPC"
                }
            );
        }
    }
    // The same read with the cluster's CA works, so the refusals above are about TLS.
    let cluster_ca = dfs_tls::ClientTls::load(&tls.ca)?;
    let channel = dfs_tls::grpc_endpoint(dn, Some(&cluster_ca))?
        .connect()
        .await?;
    let mut answer = DataTransferClient::new(channel)
        .read_block(read)
        .await?
        .into_inner();
    ensure!(
        answer.message().await?.is_some(),
        "the read over TLS returned nothing"
    );
    Ok(())
}
