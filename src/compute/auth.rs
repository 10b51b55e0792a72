//! Access tokens for the Compute API through google-cloud-auth: Application Default
//! Credentials, a service-account key file, or the metadata server of the VM `ionctl` runs
//! on. The library caches tokens and refreshes them before they expire.

use std::path::PathBuf;

use google_cloud_auth::credentials::{self, AccessTokenCredentials};
use serde::{Deserialize, Serialize};

use super::GceError;

/// Where the credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's
    /// `application_default_credentials.json`, then the metadata server.
    Adc,
    /// The metadata server only. `endpoint` overrides `http://metadata.google.internal`
    /// (`GCE_METADATA_HOST` overrides both).
    Metadata { endpoint: Option<String> },
    /// A service-account key (JSON); it signs its own tokens, with no token endpoint.
    KeyFile(PathBuf),
}

/// How the config file names [`Auth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    #[default]
    Adc,
    Metadata,
    KeyFile,
}

impl Auth {
    fn mode(&self) -> &'static str {
        match self {
            Auth::Adc => "application default credentials",
            Auth::Metadata { .. } => "metadata server",
            Auth::KeyFile(_) => "service-account key file",
        }
    }
}

/// Hands out bearer tokens.
#[derive(Clone, Debug)]
pub struct TokenSource {
    credentials: AccessTokenCredentials,
    mode: &'static str,
}

impl TokenSource {
    pub fn new(auth: &Auth) -> Result<Self, GceError> {
        let mode = auth.mode();
        let built = match auth {
            Auth::Adc => credentials::Builder::default().build_access_token_credentials(),
            Auth::Metadata { endpoint } => {
                let mut builder = credentials::mds::Builder::default();
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint.clone());
                }
                builder.build_access_token_credentials()
            }
            Auth::KeyFile(path) => {
                let key_error = |message: String| GceError::KeyFile {
                    path: path.clone(),
                    message,
                };
                let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
                let key: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| key_error(e.to_string()))?;
                if key.get("type").and_then(|t| t.as_str()) != Some("service_account") {
                    return Err(key_error(
                        "it is not a service-account key (\"type\": \"service_account\"); \
                         use auth = \"adc\" for other credential files"
                            .to_owned(),
                    ));
                }
                credentials::service_account::Builder::new(key).build_access_token_credentials()
            }
        };
        let credentials = built.map_err(|e| GceError::Credentials {
            mode,
            message: chain(&e),
        })?;
        Ok(Self { credentials, mode })
    }

    /// A current access token; cached by google-cloud-auth until shortly before it expires.
    pub async fn token(&self) -> Result<String, GceError> {
        self.credentials
            .access_token()
            .await
            .map(|t| t.token)
            .map_err(|e| GceError::Token {
                mode: self.mode,
                message: chain(&e),
            })
    }
}

pub(super) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}
