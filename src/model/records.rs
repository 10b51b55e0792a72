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
    pub state: InstanceState,
    #[serde(with = "super::time")]
    pub created_at: SystemTime,
}
