//! Resolves what every cluster command needs — etcd connection settings, and the providers'
//! tables for the commands that create machines — with the usual precedence: flag >
//! `IONCTL_*` environment > `~/.config/ionctl/config.toml` > default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

use super::CliError;
use super::providers::LocalFile;
use crate::placement::Policy;
use crate::provider::gce::GceSettings;
use crate::store::{EtcdOptions, Store, TlsOptions};
use crate::token::{AuthOptions, JoinSecret};

/// The environment variable that carries the join secret; it beats `[auth] secret`.
pub const JOIN_SECRET_ENV: &str = "IONCTL_JOIN_SECRET";
/// The etcd user's password: an environment variable, not a flag, so it stays out of `ps`.
pub const ETCD_PASSWORD_ENV: &str = "IONCTL_ETCD_PASSWORD";

/// Flags valid before or after any subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379).
    #[arg(
        long,
        global = true,
        env = "IONCTL_ETCD_ENDPOINTS",
        value_delimiter = ','
    )]
    pub etcd: Vec<String>,
    /// Key prefix of the cluster in etcd [default: /ion/v1/].
    #[arg(long, global = true, env = "IONCTL_PREFIX")]
    pub prefix: Option<String>,
    /// How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s].
    #[arg(long, global = true, env = "IONCTL_CONNECT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// CA certificate (PEM) that signed etcd's; turns on TLS towards etcd.
    #[arg(long, global = true, env = "IONCTL_ETCD_CA", value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth; needs --etcd-key.
    #[arg(long, global = true, env = "IONCTL_ETCD_CERT", value_name = "FILE")]
    pub etcd_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "IONCTL_ETCD_KEY", value_name = "FILE")]
    pub etcd_key: Option<PathBuf>,
    /// etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password.
    #[arg(long, global = true, env = "IONCTL_ETCD_USER", value_name = "NAME")]
    pub etcd_user: Option<String>,
    /// Config file [default: ~/.config/ionctl/config.toml, if present].
    #[arg(long, global = true, env = "IONCTL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `~/.config/ionctl/config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigFile {
    etcd: EtcdOptions,
    auth: AuthOptions,
    placement: Policy,
    autoscale: crate::autoscale::Policy,
    gce: GceSettings,
    local: LocalFile,
    gateway: crate::gateway::GatewayOptions,
}

/// What commands run with: the resolved etcd options, join-token settings, placement policy,
/// and the providers' config file tables (their environment variables and flags are applied
/// by the commands that use them).
#[derive(Debug, Clone)]
pub struct Context {
    pub etcd: EtcdOptions,
    pub auth: AuthOptions,
    pub policy: Policy,
    /// The `[autoscale]` table.
    pub autoscale: crate::autoscale::Policy,
    pub gce: GceSettings,
    pub local: LocalFile,
    /// The `[gateway]` table.
    pub gateway: crate::gateway::GatewayOptions,
}

impl Context {
    pub fn resolve(global: &GlobalArgs) -> Result<Self, CliError> {
        let file = match &global.config {
            Some(path) => load_config(path)?,
            None => match default_config_path() {
                Some(path) if path.exists() => load_config(&path)?,
                _ => ConfigFile::default(),
            },
        };
        let ConfigFile {
            mut etcd,
            mut auth,
            placement: policy,
            autoscale,
            gce,
            local,
            gateway,
        } = file;
        if !(policy.host_busy_cpu > 0.0 && policy.host_busy_cpu <= 1.0) {
            return Err(CliError::usage(anyhow::anyhow!(
                "[placement] host_busy_cpu = {} must be above 0 and at most 1 (a fraction of \
                 the host's CPU used by other processes); the default is 0.9",
                policy.host_busy_cpu
            )));
        }
        if let Some(secret) = std::env::var(JOIN_SECRET_ENV)
            .ok()
            .filter(|s| !s.is_empty())
        {
            auth.secret = Some(secret);
        }
        if !global.etcd.is_empty() {
            etcd.endpoints = global.etcd.clone();
        }
        if let Some(prefix) = &global.prefix {
            etcd.prefix = prefix.clone();
        }
        if let Some(timeout) = global.connect_timeout {
            etcd.connect_timeout = timeout;
        }
        apply_etcd_credentials(&mut etcd, global);
        Ok(Self {
            etcd,
            auth,
            policy,
            autoscale,
            gce,
            local,
            gateway,
        })
    }

    /// The join secret, when one is configured; a weak one is a usage error.
    pub fn join_secret(&self) -> Result<Option<JoinSecret>, CliError> {
        self.auth
            .secret
            .as_deref()
            .map(JoinSecret::new)
            .transpose()
            .map_err(CliError::usage)
    }

    pub async fn store(&self) -> Result<Store, CliError> {
        Ok(Store::connect(&self.etcd).await?)
    }
}

/// Flags and environment over the config file's TLS files, user and password.
fn apply_etcd_credentials(etcd: &mut EtcdOptions, global: &GlobalArgs) {
    if global.etcd_ca.is_some() || global.etcd_cert.is_some() || global.etcd_key.is_some() {
        let tls = etcd.tls.get_or_insert(TlsOptions {
            ca_file: None,
            cert_file: None,
            key_file: None,
            domain: None,
        });
        for (flag, field) in [
            (&global.etcd_ca, &mut tls.ca_file),
            (&global.etcd_cert, &mut tls.cert_file),
            (&global.etcd_key, &mut tls.key_file),
        ] {
            if let Some(path) = flag {
                *field = Some(path.clone());
            }
        }
    }
    if let Some(user) = &global.etcd_user {
        etcd.username = Some(user.clone());
    }
    if let Some(password) = std::env::var(ETCD_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty())
    {
        etcd.password = Some(password);
    }
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("ionctl").join("config.toml"))
}

fn load_config(path: &Path) -> Result<ConfigFile, CliError> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))
        .map_err(CliError::usage)?;
    toml::from_str(&text)
        .with_context(|| format!("invalid config file {}", path.display()))
        .map_err(CliError::usage)
}
