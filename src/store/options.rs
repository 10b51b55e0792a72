//! How to reach etcd: the `[etcd]` table shared by `ionctl`'s and the agent's config files.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::model::DEFAULT_PREFIX;

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection settings for etcd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdOptions {
    /// `http://host:port` or `host:port`; several for a cluster.
    pub endpoints: Vec<String>,
    /// The key prefix of this cluster (schema v1 default `/ion/v1/`).
    pub prefix: String,
    /// How long connecting and the first request may take before etcd counts as unreachable.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The deadline of every later request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: Option<TlsOptions>,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            username: None,
            password: None,
            tls: None,
        }
    }
}

/// TLS towards etcd: a CA to trust and, for mutual TLS, a client certificate and key (PEM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name to verify in etcd's certificate, when it differs from the endpoint host.
    pub domain: Option<String>,
}

impl TlsOptions {
    pub(super) fn to_client_config(&self) -> Result<etcd_client::TlsOptions, StoreError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| StoreError::TlsFile {
                path: path.clone(),
                source,
            })
        };
        let mut config = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.ca_file {
            config = config.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                config = config.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => return Err(StoreError::TlsIdentityIncomplete),
        }
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        Ok(config)
    }
}
