//! Providers create and delete the machines `ion-agent` runs on. [`Provider`] is the one
//! interface `ionctl spawn`/`delete` and the autoscaler use; it has two implementations:
//! - [`gce::GceProvider`]: Compute Engine VMs through the Compute v1 REST API, moving to
//!   the next configured zone when one has no capacity or quota;
//! - [`local::LocalProvider`]: `ion-agent` processes on this machine, on free loopback
//!   ports, for the demo and the tests.
//!
//! A provider knows machines, not etcd: recording `instances/<name>` and waiting for the
//! node to register is the caller's job. Progress is reported as [`ProviderEvent`]s through
//! a [`Progress`] handle; nothing here prints.

pub mod gce;
pub mod lifecycle;
pub mod local;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::mpsc;

use crate::compute::GceError;

/// The label every instance of a cluster carries (GCE), with the cluster's name as value.
pub const CLUSTER_LABEL: &str = "ion-cluster";
/// The label of a held instance, with the session id (as far as label values allow).
pub const HOLD_LABEL: &str = "ion-hold";

/// What to create.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    /// Also the agent's node id. Lower-case letters, digits and `-`, starting with a letter,
    /// at most 63 characters (GCE's rule, applied to every provider).
    pub name: String,
    pub machine_type: String,
    /// Create in this zone only; `None` tries the provider's configured zones in order.
    pub zone: Option<String>,
    /// Extra labels (GCE); the provider adds its own cluster and hold labels.
    pub labels: BTreeMap<String, String>,
    /// The session the new node is reserved for, until it goes live or the hold expires.
    pub hold_for: Option<String>,
    pub agent: AgentBootstrap,
}

/// How the new machine's agent joins the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBootstrap {
    pub etcd_endpoints: Vec<String>,
    /// The cluster's key prefix in etcd.
    pub prefix: String,
    /// `None` keeps the agent's default.
    pub units_per_vcpu: Option<u32>,
    /// `None` keeps the agent's default (5 min).
    pub hold_ttl: Option<Duration>,
}

/// A machine as its provider sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub name: String,
    /// `gce` or `local`.
    pub provider: String,
    pub zone: String,
    pub machine_type: String,
    pub status: InstanceStatus,
    /// The external IP (GCE) or `127.0.0.1:<port>` (local), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_for: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The machine's life as the provider reports it (GCE's instance status, lower-cased).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    Provisioning,
    Staging,
    Running,
    Stopping,
    Suspended,
    Terminated,
    Unknown,
}

impl InstanceStatus {
    /// GCE's `status` field.
    pub fn from_gce(status: &str) -> Self {
        match status {
            "PROVISIONING" => Self::Provisioning,
            "STAGING" => Self::Staging,
            "RUNNING" => Self::Running,
            "STOPPING" | "SUSPENDING" | "REPAIRING" => Self::Stopping,
            "SUSPENDED" => Self::Suspended,
            "TERMINATED" => Self::Terminated,
            _ => Self::Unknown,
        }
    }

    /// Gone or going, and never coming back by itself.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Terminated | Self::Suspended)
    }
}

impl std::fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Provisioning => "provisioning",
            Self::Staging => "staging",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Suspended => "suspended",
            Self::Terminated => "terminated",
            Self::Unknown => "unknown",
        })
    }
}

/// What a provider did, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// The provider accepted the request in `zone` (GCE: the insert was accepted; local: the
    /// process was started).
    Requested { name: String, zone: String },
    /// A GCE operation moved to `status` (`PENDING`, `RUNNING`, `DONE`).
    Operation {
        name: String,
        zone: String,
        operation: String,
        status: String,
    },
    /// `zone` has no capacity or quota for the instance; the next zone is tried.
    ZoneUnavailable {
        name: String,
        zone: String,
        reason: String,
    },
    /// The machine exists and boots.
    Booting { name: String, zone: String },
    /// The machine is being stopped and deleted.
    Deleting { name: String, zone: String },
}

/// Where a provider reports [`ProviderEvent`]s; dropping the receiver is fine.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    sender: Option<mpsc::UnboundedSender<ProviderEvent>>,
}

impl Progress {
    /// Reports go nowhere.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn channel() -> (Self, mpsc::UnboundedReceiver<ProviderEvent>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (
            Self {
                sender: Some(sender),
            },
            receiver,
        )
    }

    pub fn report(&self, event: ProviderEvent) {
        tracing::debug!(?event, "provider");
        if let Some(sender) = &self.sender {
            let _ = sender.send(event);
        }
    }
}

#[derive(Debug, Error)]
pub enum ProviderError {
    #[error("{0}")]
    InvalidSpec(String),
    #[error("the {provider} provider is not configured: {message}")]
    Config {
        provider: &'static str,
        message: String,
    },
    #[error("unknown machine type {machine_type:?}; the local provider knows {known}")]
    UnknownMachineType { machine_type: String, known: String },
    #[error("instance {name} already exists")]
    AlreadyExists { name: String },
    #[error("no zone could create {name}: {}", describe_zones(failures))]
    NoZone {
        name: String,
        /// Each zone tried, with why it refused.
        failures: Vec<(String, String)>,
    },
    #[error("Compute Engine: {0}")]
    Gce(#[from] GceError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn describe_zones(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(zone, why)| format!("{zone}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A place to create machines.
#[async_trait]
pub trait Provider: Send + Sync {
    /// `gce` or `local`, as recorded in `instances/<name>`.
    fn kind(&self) -> &'static str;

    /// Creates the machine and returns once it exists and boots (not once its agent has
    /// registered: that shows in etcd).
    async fn create(
        &self,
        spec: &InstanceSpec,
        progress: &Progress,
    ) -> Result<Instance, ProviderError>;

    /// The machine `name` in `zone`, or `None` if it does not exist.
    async fn get(&self, name: &str, zone: &str) -> Result<Option<Instance>, ProviderError>;

    /// Every machine of this cluster.
    async fn list(&self) -> Result<Vec<Instance>, ProviderError>;

    /// Stops and deletes the machine; a machine that does not exist is not an error. The
    /// agent gets SIGTERM first (GCE: an ACPI shutdown), so it leaves etcd at once.
    async fn delete(
        &self,
        name: &str,
        zone: &str,
        progress: &Progress,
    ) -> Result<(), ProviderError>;
}

/// Checks an instance name against GCE's rule (RFC 1035 label, at most 63 characters),
/// which is stricter than a node id, so every name is also a valid node id.
pub fn validate_name(name: &str) -> Result<(), ProviderError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ProviderError::InvalidSpec(format!(
            "instance name {name:?} is not valid: use 1 to 63 lower-case letters, digits and \
             '-', starting with a letter and not ending with '-'"
        )))
    }
}

/// An `ION_AGENT_<SECTION>__<KEY>` value that the agent must read as a string. The agent's
/// config layer parses variable values, so `42` would become a number and `true` a bool; a
/// double-quoted value stays a string. (The flat variables, like `ION_AGENT_NODE_ID`, are
/// flags and take values as they are.)
pub fn agent_env_string(value: &str) -> String {
    format!("\"{value}\"")
}

/// `ion-<machine type>-<6 random characters>`, e.g. `ion-n2-highcpu-4-k3x9qa`.
pub fn generate_name(machine_type: &str) -> String {
    let kind: String = machine_type
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    let suffix: String = (0..6)
        .map(|_| {
            let n = fastrand::u8(0..36);
            char::from(if n < 26 { b'a' + n } else { b'0' + n - 26 })
        })
        .collect();
    format!("ion-{}-{suffix}", kind.trim_matches('-'))
}

/// A label value GCE accepts: lower-case letters, digits, `_` and `-`, at most 63
/// characters. Session ids may hold more, so the exact id travels in metadata too.
pub fn label_value(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid() {
        for machine_type in ["n2-highcpu-4", "c2-standard-16", "E2_Small", "weird//type"] {
            let name = generate_name(machine_type);
            validate_name(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
            crate::model::keys::validate_id("node", &name).expect("a valid node id");
        }
        assert_ne!(generate_name("e2-small"), generate_name("e2-small"));
    }

    #[test]
    fn names_follow_gce_rules() {
        for bad in ["", "1abc", "Abc", "a_b", "a-", &"a".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        validate_name("ion-n2-highcpu-4-abc123").expect("valid");
    }

    #[test]
    fn agent_string_values_are_quoted() {
        assert_eq!(agent_env_string("42"), "\"42\"");
    }

    #[test]
    fn label_values_are_sanitised() {
        assert_eq!(label_value("Room:42.a_b-c"), "room_42_a_b-c");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }
}
