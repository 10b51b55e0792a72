//! Which nodes may take a session, and how full each would be after taking it. A node is
//! eligible when it is ready, not draining, not held for another session, its stats are
//! fresh, its host is not busy with other work, and its effective load plus the demand stays
//! within capacity × class headroom. A hold is kept until its session is reserved on the
//! node: from then on the node was not taken by the wrong session, and shared classes may
//! fill the rest of it.
//! Sessions of dedicated classes (livestream, recording) take a node that carries nothing
//! else, and nothing else is placed next to them.

use std::collections::BTreeSet;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Policy, Snapshot};
use crate::capacity::{ClassSpec, NodeLoad, believed_observed, condition};
use crate::model::{NodeRecord, NodeState, Units};

/// An eligible node and its figures after placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    pub node: &'a NodeRecord,
    pub load: NodeLoad,
    /// (effective + demand) / capacity.
    pub utilisation_after: f64,
    /// The node already carries something: committed units or live sessions.
    pub used: bool,
    /// The node is held for this very session.
    pub held_for_this: bool,
}

/// What one pass over the sessions tells about the nodes: per node, committed units and
/// whether a dedicated session sits on it; and which holds are served (the held session is
/// reserved on its node). Hashed, not ordered: it is built and read once per node on every
/// decision, and ordered string keys cost a comparison of ids per tree level
/// (docs/benchmarks.md, "Simulation"). FxHash: the keys are node ids and held session ids,
/// and SipHash was a fifth of a decision at 5,000 nodes.
struct SessionsByNode<'a> {
    committed: FxHashMap<&'a str, (Units, bool)>,
    served_holds: FxHashSet<(&'a str, &'a str)>,
}

impl<'a> SessionsByNode<'a> {
    fn of(snapshot: &'a Snapshot) -> Self {
        // Few nodes are held at once; only sessions they are held for are looked at twice.
        let held: FxHashSet<&str> = snapshot
            .nodes
            .iter()
            .filter_map(|n| n.hold_for.as_deref())
            .collect();
        let mut committed: FxHashMap<&str, (Units, bool)> = FxHashMap::default();
        committed.reserve(snapshot.nodes.len());
        let mut served_holds = FxHashSet::default();
        for session in &snapshot.sessions {
            let is_held = !held.is_empty() && held.contains(session.sid.as_str());
            for node in session.nodes() {
                let entry = committed.entry(node).or_default();
                entry.0 = entry.0.saturating_add(session.demand_on(node));
                entry.1 |= ClassSpec::of(session.class).dedicated;
                if is_held {
                    served_holds.insert((node, session.sid.as_str()));
                }
            }
        }
        Self {
            committed,
            served_holds,
        }
    }
}

/// The eligible nodes for a session `sid` of class `spec` costing `demand`, in snapshot order.
pub fn candidates<'a>(
    snapshot: &'a Snapshot,
    sid: &str,
    spec: &ClassSpec,
    demand: Units,
    policy: &Policy,
) -> Vec<Candidate<'a>> {
    let by_node = SessionsByNode::of(snapshot);
    let drains: &BTreeSet<String> = &snapshot.drains;
    let rules = policy.load_rules();
    let hold_served =
        |node: &NodeRecord, held: &str| by_node.served_holds.contains(&(node.id.as_str(), held));
    snapshot
        .nodes
        .iter()
        .filter_map(|node| {
            let (committed, carries_dedicated) = by_node
                .committed
                .get(node.id.as_str())
                .copied()
                .unwrap_or_default();
            let held_for_this = node.hold_for.as_deref() == Some(sid);
            let ready = node.state == NodeState::Ready && !drains.contains(&node.id);
            let hold_ok = match node.hold_for.as_deref() {
                None => true,
                Some(held) => held == sid || hold_served(node, held),
            };
            let fresh = node.stats_age(snapshot.now) <= policy.stats_max_age;
            let used = committed > 0 || node.stats.sessions > 0;
            let sharing_ok = if spec.dedicated {
                !used
            } else {
                !carries_dedicated
            };
            if !(ready && hold_ok && fresh && sharing_ok) || node.capacity == 0 {
                return None;
            }
            if condition(node, snapshot.now, &rules).refuses() {
                return None;
            }
            let load = NodeLoad {
                observed: believed_observed(node, committed, snapshot.now, &rules),
                committed,
                capacity: node.capacity,
            };
            let after = load.effective() + f64::from(demand);
            if after > f64::from(spec.limit(node.capacity)) {
                return None;
            }
            Some(Candidate {
                node,
                load,
                utilisation_after: after / f64::from(node.capacity),
                used,
                held_for_this,
            })
        })
        .collect()
}
