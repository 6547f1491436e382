//! The TLS option of dfs: rustls settings for every server (namenode REST, datanode gRPC and
//! HTTP) and every client (reqwest to namenodes, tonic channels to datanodes).
//!
//! TLS is off unless configured. A server given a certificate and key ([`ServerTls`]) serves
//! HTTPS / gRPC over TLS only; a client given a CA file ([`ClientTls`]) uses `https://` and
//! accepts only servers whose certificate that CA signed for the host it dialled (name or IP,
//! so certificates need a SAN for every address peers use). Addresses stay `host:port`
//! everywhere; the scheme follows the setting ([`scheme`]).
//!
//! One crypto provider, aws-lc-rs: reqwest's `rustls` feature builds it anyway (its
//! `rustls-no-provider` feature would make every `reqwest::Client::new()` in the process panic
//! unless a provider had been installed first). Clients built here always get a preconfigured
//! rustls config, even without TLS, so reqwest never looks for the system's CA store (a
//! `FROM scratch` image has none).

mod listener;

pub use listener::{HttpListener, HttpStream};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read TLS {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS {what} file {path} holds no PEM {expected}")]
    Missing {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("TLS {what} file {path}: {message}")]
    Invalid {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            what,
            path: path.to_path_buf(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

/// The `http` or `https` scheme for URLs to a server, following the client's TLS setting.
pub fn scheme(tls: Option<&ClientTls>) -> &'static str {
    match tls {
        Some(_) => "https",
        None => "http",
    }
}

/// What a client needs to verify servers: the cluster's CA.
#[derive(Clone)]
pub struct ClientTls {
    ca_path: PathBuf,
    ca_pem: Vec<u8>,
    rustls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca_path)
            .finish()
    }
}

impl ClientTls {
    /// Reads the CA certificate(s) (PEM) that server certificates must chain to. Only these
    /// are trusted, not the system's store.
    pub fn load(ca: &Path) -> Result<ClientTls, TlsError> {
        const WHAT: &str = "CA";
        let ca_pem = read(WHAT, ca)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(WHAT, ca, &ca_pem)? {
            roots.add(cert).map_err(|e| TlsError::Invalid {
                what: WHAT,
                path: ca.to_path_buf(),
                message: e.to_string(),
            })?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid {
                what: WHAT,
                path: ca.to_path_buf(),
                message: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ClientTls {
            ca_path: ca.to_path_buf(),
            ca_pem,
            rustls: Arc::new(config),
        })
    }

    /// Loads the CA file if one is configured.
    pub fn load_optional(ca: Option<&Path>) -> Result<Option<ClientTls>, TlsError> {
        ca.map(ClientTls::load).transpose()
    }

    /// The CA file this was read from.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// Settings for a tonic channel to a datanode.
    pub fn grpc(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .timeout(HANDSHAKE_TIMEOUT)
    }
}

/// A reqwest client builder for calls to namenodes: with `tls`, it trusts only that CA; without,
/// it speaks plain HTTP (and still never reads the system's CA store).
pub fn http_client(tls: Option<&ClientTls>) -> reqwest::ClientBuilder {
    let config = match tls {
        Some(tls) => (*tls.rustls).clone(),
        None => rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            // The provider supports the default versions, so this cannot fail; an empty root
            // store would refuse every server anyway, and plain HTTP never uses it.
            .map(|b| {
                b.with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            })
            .unwrap_or_else(|_| unreachable!("aws-lc-rs supports the default TLS versions")),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(tls.is_some())
}

/// A tonic endpoint for the gRPC server at `addr` (host:port): `https://` with the CA when
/// `tls` is set.
pub fn grpc_endpoint(
    addr: &str,
    tls: Option<&ClientTls>,
) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("{}://{addr}", scheme(tls)))?;
    match tls {
        Some(tls) => endpoint.tls_config(tls.grpc()),
        None => Ok(endpoint),
    }
}

/// A server's certificate chain and private key.
#[derive(Clone)]
pub struct ServerTls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    rustls: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls(..)")
    }
}

impl ServerTls {
    /// Reads a PEM certificate chain (the server's certificate first) and its PEM private key.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let cert_pem = read("certificate", cert)?;
        let key_pem = read("key", key)?;
        let chain = certificates("certificate", cert, &cert_pem)?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing {
                what: "key",
                path: key.to_path_buf(),
                expected: "private key",
            },
            e => TlsError::Invalid {
                what: "key",
                path: key.to_path_buf(),
                message: e.to_string(),
            },
        })?;
        let invalid = |e: rustls::Error| TlsError::Invalid {
            what: "certificate",
            path: cert.to_path_buf(),
            message: e.to_string(),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(invalid)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            cert_pem,
            key_pem,
            rustls: Arc::new(config),
        })
    }

    /// Loads the pair if both are configured.
    pub fn load_optional(
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<ServerTls>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => ServerTls::load(cert, key).map(Some),
            _ => Ok(None),
        }
    }

    /// Settings for a tonic server.
    pub fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
            .timeout(HANDSHAKE_TIMEOUT)
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.rustls))
    }
}

/// Checks the TLS keys of a daemon, which is a server and a client at once: `tls_cert`,
/// `tls_key` and `tls_ca` are all set or none is.
pub fn check_daemon_settings(
    cert: Option<&Path>,
    key: Option<&Path>,
    ca: Option<&Path>,
) -> Result<(), String> {
    match (cert.is_some(), key.is_some(), ca.is_some()) {
        (true, true, true) | (false, false, false) => Ok(()),
        _ => Err("--tls-cert, --tls-key and --tls-ca go together: set all three or none".into()),
    }
}
