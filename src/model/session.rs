//! Sessions: `sessions/<sid>`, created by a placer as a reservation and adopted by the agent
//! on the first join.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::Units;

/// The kinds of session the capacity model knows (docs/placement.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionClass {
    /// 2..6 participants, everyone sees everyone.
    Group,
    /// 2..50 participants, last-N video of 9.
    Meeting,
    /// 2..300 participants, up to 6 speakers.
    Conference,
    /// 1 publisher and n viewers, on dedicated nodes.
    Livestream,
    /// A recorder of n tracks, on a dedicated node.
    Recording,
}

impl std::fmt::Display for SessionClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionClass::Group => "group",
            SessionClass::Meeting => "meeting",
            SessionClass::Conference => "conference",
            SessionClass::Livestream => "livestream",
            SessionClass::Recording => "recording",
        })
    }
}

/// `reserved` until the agent sees the first join, then `live`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Reserved,
    Live,
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionState::Reserved => "reserved",
            SessionState::Live => "live",
        })
    }
}

fn is_zero(units: &Units) -> bool {
    *units == 0
}

impl SessionRecord {
    /// The units this session commits on `node`: its demand on the origin, its edge share on
    /// each edge, nothing elsewhere.
    pub fn demand_on(&self, node: &str) -> Units {
        if self.node == node {
            self.demand
        } else if self.relays.iter().any(|r| r == node) {
            self.edge_demand
        } else {
            0
        }
    }

    /// The session has participants on `node`: its origin or one of its edges.
    pub fn is_on(&self, node: &str) -> bool {
        self.node == node || self.relays.iter().any(|r| r == node)
    }

    /// Every node of the session, the origin first.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.node.as_str()).chain(self.relays.iter().map(String::as_str))
    }
}

/// `sessions/<sid>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub sid: String,
    pub class: SessionClass,
    /// Participants (or tracks, for recording) the session was placed for.
    pub size: u32,
    /// Units committed on `node` (the origin) for this session.
    pub demand: Units,
    pub node: String,
    pub state: SessionState,
    /// Edge nodes of a session that spans nodes: each relays the session's tracks from the
    /// others (from the origin `node`, for a livestream).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<String>,
    /// Units committed on each of `relays`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub edge_demand: Units,
    #[serde(with = "super::time")]
    pub created_at: SystemTime,
}
