//! Why a TLS connection to etcd failed when the gRPC stack says only "connection closed":
//! etcd (TLS 1.3) checks a client certificate after the handshake and answers a bad one with
//! an alert that tonic drops. One handshake of our own with the same CA and certificate, and
//! one read, shows the alert, so the error can name it. Runs only after a failed connect.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;

use super::TlsOptions;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The TLS error that connecting to `endpoint` with `tls` ends in, if it ends in one: a
/// handshake failure, or an alert etcd sends right after it. `None` when the probe cannot
/// tell (plain http, unreadable files, no answer) or etcd accepts the connection.
pub(super) async fn tls_refusal(endpoint: &str, tls: &TlsOptions) -> Option<String> {
    crate::compute::install_crypto_provider();
    let authority = endpoint
        .strip_prefix("https://")
        .or_else(|| (!endpoint.contains("://")).then_some(endpoint))?;
    let authority = authority.trim_end_matches('/');
    let host = match authority.rsplit_once(':') {
        Some((host, _port)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => authority,
    };
    let name = tls.domain.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_owned()).ok()?;
    let config = Arc::new(client_config(tls)?);
    let probe = async {
        let tcp = tokio::net::TcpStream::connect(authority).await.ok()?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut stream = match connector.connect(server_name, tcp).await {
            Ok(stream) => stream,
            Err(e) => return Some(e.to_string()),
        };
        // An HTTP/2 server speaks first (its SETTINGS); a refusal arrives as an alert.
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await {
            Ok(0) => Some("etcd closed the connection right after the TLS handshake".to_owned()),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe).await.ok()?
}

fn client_config(tls: &TlsOptions) -> Option<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(tls.ca_file.as_ref()?).ok()? {
        roots.add(cert.ok()?).ok()?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .ok()?
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let key = PrivateKeyDer::from_pem_file(key).ok()?;
            builder.with_client_auth_cert(chain, key).ok()?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Some(config)
}
