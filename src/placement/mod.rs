//! Placement, pure: [`decide`] takes a snapshot of the cluster, a request and a policy and
//! answers where the session goes (docs/placement.md). Nothing here does I/O or reads the clock; the
//! snapshot carries `now`. The shell that reads etcd, commits the decision and retries on
//! conflict is [`crate::placer`].

mod decide;
mod eligible;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::capacity::{DEFAULT_UNITS_PER_VCPU, LoadRules, Sessions};
use crate::model::{InstanceRecord, NodeRecord, PendingDemand, SessionClass, Units};

pub use decide::decide;
pub use eligible::{Candidate, candidates};

/// What `decide` sees: the cluster at one etcd revision, and the time it is decided at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub revision: i64,
    pub now: SystemTime,
    pub nodes: Vec<NodeRecord>,
    /// Indexed by id and summed per node, so a decision costs the nodes and not the sessions.
    pub sessions: Sessions,
    /// Ids of nodes with a drain request.
    pub drains: BTreeSet<String>,
    pub pending: Vec<PendingDemand>,
    /// Instances the autoscaler or `ionctl spawn` started, some for one session: a session
    /// whose instance is still booting waits for it rather than taking another node.
    pub instances: Vec<InstanceRecord>,
}

impl Snapshot {
    /// The instance in flight (asked for less than `boot_wait` ago, its agent not registered
    /// yet) that was spawned for session `sid`, if any.
    pub fn booting_for(&self, sid: &str, boot_wait: Duration) -> Option<&InstanceRecord> {
        self.instances.iter().find(|i| {
            i.in_flight()
                && i.is_for(sid)
                && self.now.duration_since(i.created_at).unwrap_or_default() < boot_wait
                && !self.nodes.iter().any(|n| n.id == i.name)
        })
    }
}

/// Which eligible node wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Fill used nodes first, the fullest after placement wins, so empty nodes can go.
    #[default]
    Binpack,
    /// The least utilised node after placement wins.
    Spread,
}

/// Which side of a session a participant joins: a session that spans nodes has its
/// publishers on the origin and its viewers on the edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Publisher,
    Viewer,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Publisher => "publisher",
            Role::Viewer => "viewer",
        })
    }
}

/// One session to place, or one participant to route to a placed session's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub sid: String,
    pub class: SessionClass,
    /// Participants (viewers for livestream, tracks for recording).
    pub size: u32,
    pub strategy: Strategy,
    pub role: Role,
    /// The participant, when the caller knows it: viewers of a session that spans nodes are
    /// spread over its nodes with room by a hash of it, so a burst of joins does not all go
    /// to the node with the most room before its load shows them.
    pub uid: Option<String>,
}

/// The knobs of placement that are not part of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Capacity units per vCPU, to size new machines for demand that fits nowhere.
    pub units_per_vcpu: Units,
    /// Stats older than this make a node ineligible: 3 × the agents' heartbeat of 10 s.
    #[serde(with = "humantime_serde")]
    pub stats_max_age: Duration,
    /// After an agent starts, its observed load and host CPU are ignored this long.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
    /// A host whose CPU used by other processes reaches this fraction is not chosen.
    pub host_busy_cpu: f64,
    /// A session waits at most this long for an instance started for it to register; an
    /// older one in flight is taken as failed (the autoscaler's default boot_timeout).
    #[serde(with = "humantime_serde")]
    pub boot_wait: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        let rules = LoadRules::default();
        Self {
            units_per_vcpu: DEFAULT_UNITS_PER_VCPU,
            stats_max_age: Duration::from_secs(30),
            warmup: rules.warmup,
            host_busy_cpu: rules.host_busy_cpu,
            boot_wait: Duration::from_secs(600),
        }
    }
}

impl Policy {
    /// How observed load and host health are read under this policy.
    pub fn load_rules(&self) -> LoadRules {
        LoadRules {
            warmup: self.warmup,
            host_busy_cpu: self.host_busy_cpu,
        }
    }
}

/// Where a session goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// The session already lives on `node`; every later participant goes there too, but a
    /// viewer of a session that spans nodes goes to the node of the session with the most room.
    Existing { node: String },
    /// Commit `demand` units for the session on `node`.
    Place { node: String, demand: Units },
    /// A livestream larger than any one node: `origin_demand` units on the origin (its share
    /// of the viewers and one viewer's worth per relay) and `edge_demand` on each edge.
    Split {
        origin: String,
        edges: Vec<String>,
        origin_demand: Units,
        edge_demand: Units,
    },
    /// A viewer of a livestream whose edges are all full: add the free node `edge` to it with
    /// `edge_demand` units, and the viewer joins there.
    Extend { edge: String, edge_demand: Units },
    /// No node can take it: `count` machines of `machine_type` would, held for `hold_for`
    /// when the class needs nodes of its own. When `booting` names an instance, one was
    /// already started for this session: the session waits for it rather than taking another
    /// node that frees up meanwhile.
    NeedCapacity {
        demand: Units,
        machine_type: String,
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_for: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        booting: Option<String>,
    },
    /// The request cannot be served at all, whatever capacity is added.
    Refuse { reason: String },
}

#[cfg(test)]
mod tests;
