//! Store errors, worded for the operator who reads them.

use std::path::PathBuf;

use thiserror::Error;

use crate::model::KeyError;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot reach etcd at {endpoints}: {cause}")]
    Unreachable { endpoints: String, cause: String },
    #[error("no etcd endpoints are configured")]
    NoEndpoints,
    #[error("etcd refused the request: {0}")]
    Rejected(String),
    #[error("cannot read TLS file {}: {source}", path.display())]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("etcd TLS needs both cert_file and key_file for a client certificate, or neither")]
    TlsIdentityIncomplete,
    #[error("record at {key} is not valid JSON for its kind: {source}")]
    Malformed {
        key: String,
        source: serde_json::Error,
    },
    #[error("the watch on {prefix} was compacted past revision {revision}; list again")]
    Compacted { prefix: String, revision: i64 },
    #[error("the watch on {prefix} ended: {reason}")]
    WatchEnded { prefix: String, reason: String },
    #[error("no node {node:?} is registered under {prefix}; `ionctl nodes` lists the nodes there")]
    UnknownNode { node: String, prefix: String },
    #[error("{key} kept changing under this update; try again")]
    Conflict { key: String },
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl StoreError {
    /// True when the cause is the network or etcd's availability, so retrying may help and
    /// the CLI exits with its "etcd unreachable" code.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unreachable { .. })
    }

    /// Sorts an etcd client error into unreachable (transport, unavailable, deadline) or
    /// rejected (everything etcd itself answered).
    pub(crate) fn classify(error: etcd_client::Error, endpoints: &[String]) -> Self {
        use etcd_client::Error as E;
        use tonic::Code;
        let unreachable = match &error {
            E::TransportError(_) | E::IoError(_) => true,
            E::GRpcStatus(status) => matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
            ),
            _ => false,
        };
        let cause = match &error {
            // tonic's Display of a status is its Debug dump; the message and the source
            // chain say the same in words.
            E::GRpcStatus(status) => {
                let mut parts = vec![status.message().to_owned()];
                push_chain(&mut parts, std::error::Error::source(status));
                parts.join(": ")
            }
            other => error_chain(other),
        };
        if unreachable {
            StoreError::Unreachable {
                endpoints: endpoints.join(","),
                cause,
            }
        } else {
            StoreError::Rejected(cause)
        }
    }
}

/// "outer: inner: innermost", de-duplicated, because tonic repeats itself.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    push_chain(&mut parts, Some(error));
    parts.join(": ")
}

fn push_chain(parts: &mut Vec<String>, mut current: Option<&(dyn std::error::Error + 'static)>) {
    while let Some(e) = current {
        let text = e.to_string();
        // tonic wraps every connection failure in a bare "transport error" that adds nothing.
        if text != "transport error" && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
}
