//! What an agent publishes about itself under `nodes/<id>`, on its lease.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::Units;

/// Whether a node takes new sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    #[default]
    Ready,
    Draining,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Ready => "ready",
            NodeState::Draining => "draining",
        })
    }
}

/// The live measurements of a node. CPU is a fraction of the whole machine (all cores), so
/// nodes of different sizes compare through `observed_units`, never through raw CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeStats {
    /// 0.0..=1.0 of all cores together.
    pub cpu: f64,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    /// `cpu × capacity`: the load the node carries, in units, as its CPU sees it.
    pub observed_units: f64,
    pub sessions: u32,
    pub peers: u32,
    pub tracks_in: u32,
    pub tracks_out: u32,
    pub bitrate_in_bps: u64,
    pub bitrate_out_bps: u64,
    pub packets_out_per_sec: u64,
}

/// `nodes/<id>`: written by the agent on its node lease (TTL 10 s), so a dead agent's record
/// disappears by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    /// Where clients connect for signaling: `ws://host:port/ws`.
    pub signal_url: String,
    /// The public address media flows to.
    pub address: String,
    pub zone: String,
    pub machine_type: String,
    pub vcpus: u32,
    /// `vcpus × units_per_vcpu`.
    pub capacity: Units,
    pub state: NodeState,
    /// A node started for one session takes no other until the hold ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_for: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub version: String,
    #[serde(with = "super::time")]
    pub started_at: SystemTime,
    pub stats: NodeStats,
    /// When `stats` were measured; readers judge freshness by it.
    #[serde(with = "super::time")]
    pub updated_at: SystemTime,
}

impl NodeRecord {
    /// How old the stats are at `now`; zero when the clocks disagree the other way.
    pub fn stats_age(&self, now: SystemTime) -> std::time::Duration {
        now.duration_since(self.updated_at).unwrap_or_default()
    }
}
