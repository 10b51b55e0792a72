//! Google Compute Engine: a small client for the Compute v1 REST API (instances and zone
//! operations) with google-cloud-auth credentials. It knows Compute, not ion cluster; the
//! [`crate::provider`] module turns an instance spec into an insert request.

mod auth;
mod client;
mod error;
pub mod types;

pub use auth::{Auth, AuthMode, TokenSource};
pub use client::{ClientConfig, ComputeClient, DEFAULT_BASE_URL, RetryPolicy, api_client};
pub use error::GceError;

/// Installs aws-lc-rs as the process's default rustls crypto provider. Two providers end up
/// in one binary (ring through etcd's TLS, aws-lc-rs through reqwest and google-cloud-auth),
/// and rustls then refuses to guess; call this once at start-up, before any HTTPS request.
/// Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
