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
    #[error("{0}")]
    CredentialsIncomplete(String),
    #[error("etcd client certificate {} {problem}", path.display())]
    ClientCertificate { path: PathBuf, problem: String },
    /// etcd (or its TLS) refused this client's credentials: retrying will not help.
    #[error("etcd at {endpoints} refused this client: {cause}")]
    Denied { endpoints: String, cause: String },
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

    /// True when etcd refused who this client is or what it may do (TLS, user, password,
    /// role), or the client's own certificate is unusable.
    pub fn is_access_denied(&self) -> bool {
        matches!(
            self,
            StoreError::Denied { .. } | StoreError::ClientCertificate { .. }
        )
    }

    /// Sorts an etcd client error into denied (credentials, TLS trust), unreachable
    /// (transport, unavailable, deadline) or rejected (everything else etcd answered).
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
        if let Some(cause) = access_problem(&error, &cause) {
            StoreError::Denied {
                endpoints: endpoints.join(","),
                cause,
            }
        } else if unreachable {
            StoreError::Unreachable {
                endpoints: endpoints.join(","),
                cause,
            }
        } else {
            StoreError::Rejected(cause)
        }
    }
}

/// What was wrong with this client's credentials, in words that say what to change, when
/// that is why etcd (or its TLS handshake) refused it.
fn access_problem(error: &etcd_client::Error, cause: &str) -> Option<String> {
    use tonic::Code;
    let text = cause.to_ascii_lowercase();
    if let etcd_client::Error::GRpcStatus(status) = error {
        let message = status.message();
        let refused = match status.code() {
            Code::PermissionDenied => Some(format!(
                "{message}: the etcd user's roles do not allow this; it needs readwrite on the \
                 cluster's prefix (docs/operations.md, \"etcd with TLS and RBAC\")"
            )),
            _ if text.contains("authentication failed") => Some(format!(
                "wrong etcd user name or password ({message}); check [etcd] username and \
                 password"
            )),
            _ if text.contains("user name is empty") || text.contains("user name not found") => {
                Some(format!(
                    "etcd has authentication enabled and knows no user for this client \
                     ({message}); set [etcd] username and password"
                ))
            }
            Code::Unauthenticated => Some(format!(
                "etcd did not accept this client's credentials ({message}); check [etcd] \
                 username and password"
            )),
            // A failed TLS handshake reaches here as "unavailable" with its cause below.
            _ => None,
        };
        if refused.is_some() {
            return refused;
        }
    }
    tls_problem(cause)
}

/// What a TLS failure's text (rustls's words, through tonic or from
/// [`super::diagnose::tls_refusal`]) says about this client's TLS settings, if anything.
pub(super) fn tls_problem(cause: &str) -> Option<String> {
    let text = cause.to_ascii_lowercase();
    let alert = text.contains("alert");
    if text.contains("unknownissuer") || text.contains("invalid peer certificate: unknown") {
        Some(format!(
            "etcd's certificate is not signed by a CA this client trusts ({cause}); set \
             [etcd.tls] ca_file to the CA that signed etcd's --cert-file"
        ))
    } else if text.contains("notvalidforname") {
        Some(format!(
            "etcd's certificate does not name the host in the endpoint ({cause}); connect by \
             a name it carries or set [etcd.tls] domain"
        ))
    } else if text.contains("invalid peer certificate: expired") {
        Some(format!("etcd's own certificate has expired ({cause})"))
    } else if alert
        && [
            "badcertificate",
            "certificaterequired",
            "unknownca",
            "certificateunknown",
        ]
        .iter()
        .any(|a| text.contains(a))
    {
        Some(format!(
            "etcd refused this client's certificate ({cause}); [etcd.tls] cert_file and \
             key_file must be a pair signed by the CA of etcd's --trusted-ca-file"
        ))
    } else if text.contains("invalidcontenttype") || text.contains("corrupt message") {
        Some(format!(
            "the endpoint does not speak TLS ({cause}); use an http:// endpoint, or start etcd \
             with --cert-file and --key-file"
        ))
    } else {
        None
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
