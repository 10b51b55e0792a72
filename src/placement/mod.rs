//! Placement, pure: [`decide`] takes a snapshot of the cluster, a request and a policy and
//! answers where the session goes (DESIGN §5). Nothing here does I/O or reads the clock; the
//! snapshot carries `now`. The shell that reads etcd, commits the decision and retries on
//! conflict is [`crate::placer`].

mod decide;
mod eligible;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::capacity::DEFAULT_UNITS_PER_VCPU;
use crate::model::{NodeRecord, PendingDemand, SessionClass, SessionRecord, Units};

pub use decide::decide;
pub use eligible::{Candidate, candidates};

/// What `decide` sees: the cluster at one etcd revision, and the time it is decided at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub revision: i64,
    pub now: SystemTime,
    pub nodes: Vec<NodeRecord>,
    pub sessions: Vec<SessionRecord>,
    /// Ids of nodes with a drain request.
    pub drains: BTreeSet<String>,
    pub pending: Vec<PendingDemand>,
}

impl Snapshot {
    /// The store's consistent read, stamped with the time the decision is made at.
    pub fn new(read: crate::store::Snapshot, now: SystemTime) -> Self {
        Self {
            revision: read.revision,
            now,
            nodes: read.nodes,
            sessions: read.sessions,
            drains: read.drains.into_iter().map(|(id, _)| id).collect(),
            pending: read.pending,
        }
    }
}

/// Which eligible node wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Fill used nodes first, the fullest after placement wins, so empty nodes can go.
    #[default]
    Binpack,
    /// The least utilised node after placement wins.
    Spread,
}

/// One session to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub sid: String,
    pub class: SessionClass,
    /// Participants (viewers for livestream, tracks for recording).
    pub size: u32,
    pub strategy: Strategy,
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
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            units_per_vcpu: DEFAULT_UNITS_PER_VCPU,
            stats_max_age: Duration::from_secs(30),
        }
    }
}

/// Where a session goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// The session already lives on `node`; every later participant goes there too.
    Existing { node: String },
    /// Commit `demand` units for the session on `node`.
    Place { node: String, demand: Units },
    /// A livestream larger than one node: origin plus relay edges. Not produced until the
    /// relay exists; such a livestream answers `NeedCapacity` for now.
    Split { origin: String, edges: Vec<String> },
    /// No node can take it: `count` machines of `machine_type` would, held for `hold_for`
    /// when the class needs nodes of its own.
    NeedCapacity {
        demand: Units,
        machine_type: String,
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_for: Option<String>,
    },
    /// The request cannot be served at all, whatever capacity is added.
    Refuse { reason: String },
}

#[cfg(test)]
mod tests;
