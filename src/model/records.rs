//! The intention records: drain requests, pending demands and spawned instances.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{SessionClass, Units};

/// `drain/<node_id>`: no lease; `ionctl undrain` deletes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainRequest {
    #[serde(with = "super::time")]
    pub requested_at: SystemTime,
    #[serde(
        default,
        with = "super::time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deadline: Option<SystemTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `pending/<sid>`: demand that found no node, for the autoscaler (lease 5 min).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDemand {
    pub sid: String,
    pub class: SessionClass,
    pub size: u32,
    pub demand: Units,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,
    #[serde(with = "super::time")]
    pub since: SystemTime,
}

/// Lifecycle of a spawned instance, from the provider's request to its deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Creating,
    Booting,
    Ready,
    Deleting,
}

/// `instances/<name>`: an instance started by `ionctl spawn` or the autoscaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub name: String,
    pub provider: String,
    pub zone: String,
    pub machine_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_for: Option<String>,
    /// The pending demands (session ids) this instance was spawned for: while it boots, and
    /// for a grace period after it registers, no other instance is spawned for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub demands: Vec<String>,
    pub state: InstanceState,
    #[serde(with = "super::time")]
    pub created_at: SystemTime,
    /// When its agent registered (the record went to `ready`).
    #[serde(
        default,
        with = "super::time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub registered_at: Option<SystemTime>,
    /// Why a demand it was spawned for is still waiting, as the autoscaler last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl InstanceRecord {
    /// True when the instance was spawned for session `sid`.
    pub fn is_for(&self, sid: &str) -> bool {
        self.hold_for.as_deref() == Some(sid) || self.demands.iter().any(|d| d == sid)
    }

    /// Still on its way: the provider was asked for it and its agent has not registered.
    pub fn in_flight(&self) -> bool {
        matches!(self.state, InstanceState::Creating | InstanceState::Booting)
    }
}
