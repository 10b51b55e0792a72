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

/// The live measurements of a node. Load is what the agent process itself spends
/// (`agent_cpu`), so nodes of different sizes compare through `observed_units`, never through
/// raw CPU, and a host busy with something else does not look like forwarded media: that CPU is
/// `other_cpu`, a health signal (docs/placement.md, "Observed load and host health").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeStats {
    /// The host's CPU, 0.0..=1.0 of all its cores together.
    pub cpu: f64,
    /// The agent process's own CPU as a fraction of the node's vCPUs (1.0 = all of them).
    pub agent_cpu: f64,
    /// Host CPU the agent did not spend, 0.0..=1.0 of all the host's cores.
    pub other_cpu: f64,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    /// `agent_cpu × capacity`: the load the node carries, in units, as the agent's own CPU
    /// time shows it.
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
    /// The agent shares its host with other agents (the local provider, tests): the host's
    /// CPU then says nothing about this node's health.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_host: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Something on the node an operator should look at, which the node cannot fix by
    /// itself: a recording that failed (a full disk). Cleared when the next recording starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub version: String,
    #[serde(with = "super::time")]
    pub started_at: SystemTime,
    pub stats: NodeStats,
    /// When `stats` were measured; readers judge freshness by it.
    #[serde(with = "super::time")]
    pub updated_at: SystemTime,
}

impl NodeRecord {
    /// A ready node on 127.0.0.1 with no load yet, started and measured at `now`: where tests,
    /// benchmarks and examples start before they set the figures they care about.
    pub fn blank(
        id: &str,
        machine_type: &str,
        vcpus: u32,
        capacity: Units,
        now: SystemTime,
    ) -> Self {
        Self {
            id: id.to_owned(),
            signal_url: format!("ws://127.0.0.1:7000/ws?node={id}"),
            address: "127.0.0.1".to_owned(),
            zone: "local".to_owned(),
            machine_type: machine_type.to_owned(),
            vcpus,
            capacity,
            state: NodeState::Ready,
            hold_for: None,
            shared_host: false,
            labels: BTreeMap::new(),
            problem: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: now,
            stats: NodeStats::default(),
            updated_at: now,
        }
    }

    /// This record as its agent reports it when the agent spends `agent_cpu` of the node's
    /// vCPUs: agent CPU, observed units (`agent_cpu × capacity`) and the host CPU (the agent's
    /// plus `other_cpu`) agree.
    pub fn spending(mut self, agent_cpu: f64) -> Self {
        self.stats.cpu = agent_cpu + self.stats.other_cpu;
        self.stats.agent_cpu = agent_cpu;
        self.stats.observed_units = agent_cpu * f64::from(self.capacity);
        self
    }

    /// How old the stats are at `now`; zero when the clocks disagree the other way.
    pub fn stats_age(&self, now: SystemTime) -> std::time::Duration {
        now.duration_since(self.updated_at).unwrap_or_default()
    }
}
