//! An axum server on an `HttpListener` with TLS, in-process on `127.0.0.1:0`: clients that
//! trust its CA are answered, plain HTTP and clients of another CA are not, and a client that
//! connects and never starts a handshake does not hold up the others.

use axum::Router;
use axum::routing::get;
use dfs_tls::{ClientTls, HttpListener, ServerTls};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes `ca.pem`, and `cert.pem` + `key.pem` for 127.0.0.1 signed by it, into `dir`.
fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("sign");
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, issuer.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

#[tokio::test]
async fn https_for_clients_of_the_ca_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    std::fs::create_dir_all(&ours).expect("mkdir");
    std::fs::create_dir_all(&theirs).expect("mkdir");
    let (ca, cert, key) = pki(&ours);
    let (other_ca, _, _) = pki(&theirs);

    let server = ServerTls::load(&cert, &key).expect("server TLS");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let listener = HttpListener::new(tcp, Some(&server)).expect("listener");
    let app = Router::new().route("/", get(|| async { "hello" }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A connection that never says anything must not block the accept loop.
    let _silent = tokio::net::TcpStream::connect(addr).await.expect("connect");

    let trusted = ClientTls::load(&ca).expect("CA");
    let client = dfs_tls::http_client(Some(&trusted))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let body = client
        .get(format!("https://{addr}/"))
        .send()
        .await
        .expect("HTTPS with the right CA")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "hello");

    let stranger = ClientTls::load(&other_ca).expect("CA");
    let client = dfs_tls::http_client(Some(&stranger))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    assert!(
        client.get(format!("https://{addr}/")).send().await.is_err(),
        "a certificate of another CA was accepted"
    );

    let plain = dfs_tls::http_client(None)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    assert!(
        plain.get(format!("http://{addr}/")).send().await.is_err(),
        "plain HTTP was answered"
    );
}

#[test]
fn missing_or_empty_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.pem");
    let err = ClientTls::load(&missing)
        .expect_err("missing file")
        .to_string();
    assert!(err.contains("nope.pem"), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let err = ClientTls::load(&empty)
        .expect_err("no certificate")
        .to_string();
    assert!(err.contains("no PEM certificate"), "{err}");
    let err = ServerTls::load(&empty, &empty)
        .expect_err("no certificate")
        .to_string();
    assert!(err.contains("empty.pem"), "{err}");
}
