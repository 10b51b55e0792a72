//! Errors of the Compute client, sorted so that callers can tell what to do: retry
//! ([`GceError::is_retryable`]), try another zone ([`GceError::is_capacity`]), or give up.

use std::path::PathBuf;

use thiserror::Error;

use super::types::OperationError;

#[derive(Debug, Error)]
pub enum GceError {
    #[error("cannot set up Google credentials ({mode}): {message}")]
    Credentials { mode: &'static str, message: String },
    #[error("cannot get an access token ({mode}): {message}")]
    Token { mode: &'static str, message: String },
    #[error("cannot read the service-account key file {}: {message}", path.display())]
    KeyFile { path: PathBuf, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("{method} {url} failed: {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
        /// Connection refused or reset, or a timeout: worth a retry.
        transient: bool,
    },
    #[error(
        "Compute API answered {status} to {method} {url}: {message}{}",
        reasons_suffix(message, reasons)
    )]
    Api {
        status: u16,
        method: String,
        url: String,
        message: String,
        /// `errors[].reason` of the error body, e.g. `quotaExceeded`, `rateLimitExceeded`.
        reasons: Vec<String>,
        /// Seconds from a `Retry-After` header.
        retry_after: Option<u64>,
    },
    #[error("unexpected answer to {method} {url}: {message}")]
    Decode {
        method: String,
        url: String,
        message: String,
    },
    #[error("operation {operation} in {zone} failed: {}", describe(errors))]
    Operation {
        zone: String,
        operation: String,
        errors: Vec<OperationError>,
    },
    #[error("operation {operation} in {zone} was not done after {}", humantime::format_duration(*waited))]
    OperationTimeout {
        zone: String,
        operation: String,
        waited: std::time::Duration,
    },
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: Box<GceError> },
}

/// The reasons the message does not already say, in brackets: a cause is printed once.
fn reasons_suffix(message: &str, reasons: &[String]) -> String {
    let mut new: Vec<&str> = Vec::new();
    for reason in reasons {
        if !message.contains(reason.as_str()) && !new.contains(&reason.as_str()) {
            new.push(reason);
        }
    }
    if new.is_empty() {
        String::new()
    } else {
        format!(" ({})", new.join(", "))
    }
}

fn describe(errors: &[OperationError]) -> String {
    if errors.is_empty() {
        return "no error details".to_owned();
    }
    errors
        .iter()
        .map(|e| format!("{}: {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Operation error codes that mean "this zone (or region) has no room for you now".
const CAPACITY_CODES: &[&str] = &[
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "RESOURCE_POOL_EXHAUSTED",
    "QUOTA_EXCEEDED",
];

impl GceError {
    /// Worth the same request again after a pause: 429, 5xx, API rate limits and transient
    /// transport failures.
    pub fn is_retryable(&self) -> bool {
        // A zone out of capacity answers 503 too, but asking it again only burns the time
        // another zone could use: it is not retried (see `is_capacity`).
        if self.is_capacity() {
            return false;
        }
        match self {
            GceError::Transport { transient, .. } => *transient,
            GceError::Api {
                status, reasons, ..
            } => {
                *status == 429
                    || (500..600).contains(status)
                    || reasons
                        .iter()
                        .any(|r| r == "rateLimitExceeded" || r == "userRateLimitExceeded")
            }
            GceError::Token { .. } => true,
            _ => false,
        }
    }

    /// The zone has no capacity or the quota is used up: another zone may work.
    pub fn is_capacity(&self) -> bool {
        match self {
            GceError::Operation { errors, .. } => errors
                .iter()
                .any(|e| CAPACITY_CODES.contains(&e.code.as_str())),
            GceError::Api {
                reasons, message, ..
            } => {
                reasons.iter().any(|r| {
                    r == "quotaExceeded"
                        || r == "resourcePoolExhausted"
                        || CAPACITY_CODES.contains(&r.as_str())
                }) || CAPACITY_CODES.iter().any(|c| message.contains(c))
            }
            GceError::RetriesExhausted { last, .. } => last.is_capacity(),
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, GceError::Api { status: 404, .. })
    }
}
