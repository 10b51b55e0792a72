//! Which provider a command uses and how it is configured: the `[gce]` and `[local]` tables
//! of the config file, overridden by `IONCTL_GCE_*` / `IONCTL_LOCAL_*` variables, overridden
//! by flags.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use serde::Deserialize;

use super::{CliError, Context};
use crate::compute::AuthMode;
use crate::model::Keys;
use crate::provider::Provider;
use crate::provider::gce::{GceProvider, GceSettings};
use crate::provider::local::{LocalProvider, LocalSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// Compute Engine VMs (configured in [gce]).
    Gce,
    /// ion-agent processes on this machine.
    Local,
}

impl ProviderKind {
    pub fn parse_recorded(name: &str) -> Option<Self> {
        match name {
            "gce" => Some(Self::Gce),
            "local" => Some(Self::Local),
            _ => None,
        }
    }
}

/// The `[local]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalFile {
    /// Where state files and agent logs go [default: ~/.local/state/ionctl/local].
    pub state_dir: Option<PathBuf>,
    /// The ion-agent binary [default: next to ionctl, else on PATH].
    pub agent_bin: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub boot_delay: Option<Duration>,
    pub units_per_vcpu: Option<u32>,
    pub zone: Option<String>,
}

/// Flags that say where a provider's machines are; `spawn` and `delete` both take them.
#[derive(Debug, Clone, Default, Args)]
pub struct ProviderFlags {
    /// GCE project [env: IONCTL_GCE_PROJECT; config: [gce] project].
    #[arg(long, value_name = "PROJECT")]
    pub project: Option<String>,
    /// Local provider: where agents' state files and logs go [env: IONCTL_LOCAL_STATE_DIR;
    /// default: ~/.local/state/ionctl/local].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Flags that shape new machines; `spawn` only.
#[derive(Debug, Clone, Default, Args)]
pub struct CreateFlags {
    /// GCE boot image with ion-agent [env: IONCTL_GCE_IMAGE; config: [gce] image].
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// GCE: create a Spot VM [env: IONCTL_GCE_SPOT; config: [gce] spot].
    #[arg(long)]
    pub spot: bool,
    /// Local provider: start the agent after this delay, as a VM boots (e.g. 30s)
    /// [env: IONCTL_LOCAL_BOOT_DELAY].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub boot_delay: Option<Duration>,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

fn env_parse<T: FromStr>(key: &str) -> Result<Option<T>, CliError>
where
    T::Err: std::fmt::Display,
{
    env(key)
        .map(|v| {
            v.parse()
                .map_err(|e| CliError::usage(anyhow!("{key}={v:?} is not valid: {e}")))
        })
        .transpose()
}

fn env_list(key: &str) -> Option<Vec<String>> {
    env(key).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn env_bool(key: &str) -> Result<Option<bool>, CliError> {
    env(key)
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(CliError::usage(anyhow!(
                "{key}={v:?} is not valid: use true or false"
            ))),
        })
        .transpose()
}

/// `[gce]` from the file, then `IONCTL_GCE_*`, then flags.
pub fn gce_settings(
    context: &Context,
    flags: &ProviderFlags,
    create: Option<&CreateFlags>,
) -> Result<GceSettings, CliError> {
    let mut s = context.gce.clone();
    macro_rules! string {
        ($field:ident, $key:literal) => {
            if let Some(v) = env($key) {
                s.$field = v.into();
            }
        };
    }
    macro_rules! optional {
        ($field:ident, $key:literal) => {
            if let Some(v) = env_parse($key)? {
                s.$field = Some(v);
            }
        };
    }
    string!(project, "IONCTL_GCE_PROJECT");
    string!(image, "IONCTL_GCE_IMAGE");
    string!(network, "IONCTL_GCE_NETWORK");
    string!(cluster, "IONCTL_GCE_CLUSTER");
    string!(base_url, "IONCTL_GCE_BASE_URL");
    optional!(subnetwork, "IONCTL_GCE_SUBNETWORK");
    optional!(service_account, "IONCTL_GCE_SERVICE_ACCOUNT");
    optional!(disk_size_gb, "IONCTL_GCE_DISK_SIZE_GB");
    optional!(disk_type, "IONCTL_GCE_DISK_TYPE");
    optional!(key_file, "IONCTL_GCE_KEY_FILE");
    optional!(metadata_endpoint, "IONCTL_GCE_METADATA_ENDPOINT");
    optional!(units_per_vcpu, "IONCTL_GCE_UNITS_PER_VCPU");
    if let Some(v) = env_list("IONCTL_GCE_ZONES") {
        s.zones = v;
    }
    if let Some(v) = env_list("IONCTL_GCE_TAGS") {
        s.tags = v;
    }
    if let Some(v) = env_list("IONCTL_GCE_AGENT_ETCD") {
        s.agent_etcd = v;
    }
    if let Some(v) = env_bool("IONCTL_GCE_SPOT")? {
        s.spot = v;
    }
    if let Some(v) = env_parse("IONCTL_GCE_SIGNAL_PORT")? {
        s.signal_port = v;
    }
    if let Some(v) = env_parse("IONCTL_GCE_UDP_PORT")? {
        s.udp_port = v;
    }
    if let Some(v) = env("IONCTL_GCE_AUTH") {
        // The config file's names (kebab-case), in any case, as clap's parser took them.
        let name = serde_json::Value::String(v.to_ascii_lowercase());
        s.auth = serde_json::from_value::<AuthMode>(name).map_err(|_| {
            CliError::usage(anyhow!(
                "IONCTL_GCE_AUTH={v:?} is not valid: use adc, metadata or key-file"
            ))
        })?;
    }
    if let Some(project) = &flags.project {
        s.project = project.clone();
    }
    if let Some(create) = create {
        if let Some(image) = &create.image {
            s.image = image.clone();
        }
        if create.spot {
            s.spot = true;
        }
    }
    Ok(s)
}

fn default_state_dir() -> PathBuf {
    let base = env("XDG_STATE_HOME").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state"))
    });
    base.unwrap_or_else(std::env::temp_dir)
        .join("ionctl")
        .join("local")
}

/// `ion-agent` next to this `ionctl` (as cargo and the release archive place them), else
/// whatever PATH finds.
fn default_agent_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("ion-agent")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("ion-agent"))
}

/// `[local]` from the file, then `IONCTL_LOCAL_*`, then flags.
pub fn local_settings(
    context: &Context,
    flags: &ProviderFlags,
    create: Option<&CreateFlags>,
) -> Result<LocalSettings, CliError> {
    let file = &context.local;
    let state_dir = flags
        .state_dir
        .clone()
        .or_else(|| env("IONCTL_LOCAL_STATE_DIR").map(PathBuf::from))
        .or_else(|| file.state_dir.clone())
        .unwrap_or_else(default_state_dir);
    let agent_bin = env("IONCTL_LOCAL_AGENT_BIN")
        .map(PathBuf::from)
        .or_else(|| file.agent_bin.clone())
        .unwrap_or_else(default_agent_bin);
    let mut settings = LocalSettings::new(state_dir, agent_bin);
    let env_delay = env("IONCTL_LOCAL_BOOT_DELAY")
        .map(|v| {
            humantime::parse_duration(&v).map_err(|e| {
                CliError::usage(anyhow!("IONCTL_LOCAL_BOOT_DELAY={v:?} is not valid: {e}"))
            })
        })
        .transpose()?;
    settings.boot_delay = create
        .and_then(|c| c.boot_delay)
        .or(env_delay)
        .or(file.boot_delay)
        .unwrap_or_default();
    settings.units_per_vcpu = env_parse("IONCTL_LOCAL_UNITS_PER_VCPU")?.or(file.units_per_vcpu);
    if let Some(zone) = &file.zone {
        settings.zone = zone.clone();
    }
    Ok(settings)
}

/// The provider of `kind` for this cluster.
pub fn build(
    kind: ProviderKind,
    context: &Context,
    flags: &ProviderFlags,
    create: Option<&CreateFlags>,
) -> Result<Arc<dyn Provider>, CliError> {
    Ok(match kind {
        ProviderKind::Gce => {
            let settings = gce_settings(context, flags, create)?;
            Arc::new(GceProvider::new(settings).map_err(CliError::usage)?)
        }
        ProviderKind::Local => {
            let keys = Keys::new(&context.etcd.prefix).map_err(CliError::usage)?;
            Arc::new(LocalProvider::new(
                local_settings(context, flags, create)?,
                context.etcd.endpoints.clone(),
                keys.prefix().to_owned(),
            ))
        }
    })
}
