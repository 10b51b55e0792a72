//! How to reach etcd: the `[etcd]` table shared by `ionctl`'s and the agent's config files.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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
    /// etcd user (RBAC); the auth token is renewed whenever etcd says it has expired.
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

impl EtcdOptions {
    /// The user and password, when both are set; one without the other is an error.
    pub(super) fn credentials(&self) -> Result<Option<(&str, &str)>, StoreError> {
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => Ok(Some((user, password))),
            (None, None) => Ok(None),
            (Some(user), None) => Err(StoreError::CredentialsIncomplete(format!(
                "etcd user {user:?} has no password: set [etcd] password (or the \
                 *_ETCD_PASSWORD environment variable)"
            ))),
            (None, Some(_)) => Err(StoreError::CredentialsIncomplete(
                "an etcd password is set without a user: set [etcd] username too".to_owned(),
            )),
        }
    }
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
                let pem = read(cert)?;
                check_validity(cert, &pem, std::time::SystemTime::now())?;
                config = config.identity(etcd_client::Identity::from_pem(pem, read(key)?));
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

/// Fails when the client certificate in `pem` is not valid at `now`: etcd would only answer
/// with a TLS alert ("bad certificate") that does not say why.
fn check_validity(path: &Path, pem: &[u8], now: SystemTime) -> Result<(), StoreError> {
    let invalid = |problem: String| StoreError::ClientCertificate {
        path: path.to_owned(),
        problem,
    };
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| invalid(format!("is not a PEM certificate ({e})")))?;
    let cert = block
        .parse_x509()
        .map_err(|e| invalid(format!("cannot be parsed ({e})")))?;
    let validity = cert.validity();
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let date = |t: &x509_parser::time::ASN1Time| {
        humantime::format_rfc3339_seconds(
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64),
        )
    };
    if now > validity.not_after.timestamp() {
        return Err(invalid(format!(
            "expired at {}; issue a new one from the CA etcd trusts",
            date(&validity.not_after)
        )));
    }
    if now < validity.not_before.timestamp() {
        return Err(invalid(format!(
            "is not valid before {} (is this machine's clock right?)",
            date(&validity.not_before)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::{EtcdOptions, check_validity};
    use crate::store::StoreError;

    #[test]
    fn a_user_needs_a_password_and_a_password_a_user() {
        let mut options = EtcdOptions {
            username: Some("ion".to_owned()),
            ..EtcdOptions::default()
        };
        let error = options.credentials().unwrap_err().to_string();
        assert!(error.contains("\"ion\" has no password"), "{error}");
        options.username = None;
        options.password = Some("secret".to_owned());
        let error = options.credentials().unwrap_err().to_string();
        assert!(error.contains("without a user"), "{error}");
        options.username = Some("ion".to_owned());
        assert_eq!(options.credentials().unwrap(), Some(("ion", "secret")));
    }

    #[test]
    fn a_client_certificate_is_checked_against_the_clock() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let path = Path::new("/etc/ion/etcd-client.pem");
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        // 2020-06-01, 2022-01-01 and 2019-01-01.
        check_validity(path, pem.as_bytes(), at(1_590_969_600)).expect("valid in 2020");
        let expired = check_validity(path, pem.as_bytes(), at(1_640_995_200)).unwrap_err();
        assert!(matches!(expired, StoreError::ClientCertificate { .. }));
        assert_eq!(
            expired.to_string(),
            "etcd client certificate /etc/ion/etcd-client.pem expired at \
             2021-01-01T00:00:00Z; issue a new one from the CA etcd trusts"
        );
        let early = check_validity(path, pem.as_bytes(), at(1_546_300_800)).unwrap_err();
        assert!(
            early.to_string().contains("not valid before 2020-01-01"),
            "{early}"
        );
        let garbage = check_validity(path, b"not a certificate", at(0)).unwrap_err();
        assert!(
            garbage.to_string().contains("is not a PEM certificate"),
            "{garbage}"
        );
    }
}
