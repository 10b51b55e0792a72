//! TLS for `ionctl serve` and the agent's signaling port: the certificate chain and key from
//! PEM files, reloaded when either file changes. A reload swaps the configuration new handshakes use; connections already open
//! keep theirs, so rotating a certificate drops nobody.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;

/// How often the files are checked for a change.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Loads `cert` and `key`, and keeps reloading them when they change.
pub async fn load_and_watch(cert: PathBuf, key: PathBuf) -> anyhow::Result<RustlsConfig> {
    crate::compute::install_crypto_provider();
    let config = RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| {
            format!(
                "cannot use {} and {} for TLS (a PEM certificate chain and its PEM private \
                 key)",
                cert.display(),
                key.display()
            )
        })?;
    tokio::spawn(watch(config.clone(), cert, key));
    Ok(config)
}

/// The files' modification times and sizes: what a rotation changes.
fn stamp(paths: [&Path; 2]) -> Option<[(SystemTime, u64); 2]> {
    let read = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    Some([read(paths[0])?, read(paths[1])?])
}

async fn watch(config: RustlsConfig, cert: PathBuf, key: PathBuf) {
    let mut seen = stamp([&cert, &key]);
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let now = stamp([&cert, &key]);
        if now == seen || now.is_none() {
            continue;
        }
        // A rotation that wrote one file and not yet the other fails here and is tried again
        // at the next change; the old certificate stays in use meanwhile.
        match config.reload_from_pem_file(&cert, &key).await {
            Ok(()) => {
                tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
                seen = now;
            }
            Err(error) => {
                tracing::warn!(cert = %cert.display(), %error, "cannot reload the TLS certificate; keeping the old one");
                seen = now;
            }
        }
    }
}
