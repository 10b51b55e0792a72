//! Which nodes may take a session, and how full each would be after taking it. A node is
//! eligible when it is ready, not draining, not held for another session, its stats are
//! fresh, its host is not busy with other work, and its effective load plus the demand stays
//! within capacity × class headroom. A hold is kept until its session is reserved on the
//! node: from then on the node was not taken by the wrong session, and shared classes may
//! fill the rest of it.
//! Sessions of dedicated classes (livestream, recording) take a node that carries nothing
//! else, and nothing else is placed next to them.

use rustc_hash::FxHashSet;

use super::{Policy, Snapshot};
use crate::capacity::{ClassSpec, Conditions, NodeLoad, believed_given};
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

/// The eligible nodes for a session `sid` of class `spec` costing `demand`, in snapshot order.
/// Lazily: a decision keeps only the best, and a vector of every node per call was a large
/// allocation at thousands of nodes.
pub fn candidates<'a>(
    snapshot: &'a Snapshot,
    sid: &str,
    spec: &ClassSpec,
    demand: Units,
    policy: &Policy,
) -> impl Iterator<Item = Candidate<'a>> {
    // Hashed once per call: a lookup in the ordered set per node compares ids per level.
    let drained: FxHashSet<&str> = snapshot.drains.iter().map(String::as_str).collect();
    let conditions = Conditions::at(snapshot.now, policy.load_rules());
    // Stats updated at or after this are fresh: a comparison per node, not a subtraction.
    let fresh_since = snapshot.now.checked_sub(policy.stats_max_age);
    // A hold is served once its session is reserved on the held node.
    let hold_served = |node: &NodeRecord, held: &str| {
        snapshot
            .sessions
            .get(held)
            .is_some_and(|session| session.is_on(&node.id))
    };
    snapshot.nodes.iter().filter_map(move |node| {
        // What the record alone decides comes first; the per-node sums are looked up only
        // for nodes that pass it (a lookup per node was most of a decision).
        let held_for_this = node.hold_for.as_deref() == Some(sid);
        let ready = node.state == NodeState::Ready
            && (drained.is_empty() || !drained.contains(node.id.as_str()));
        let hold_ok = match node.hold_for.as_deref() {
            None => true,
            Some(held) => held == sid || hold_served(node, held),
        };
        let fresh = match fresh_since {
            Some(since) => node.updated_at >= since,
            None => node.stats_age(snapshot.now) <= policy.stats_max_age,
        };
        if !(ready && hold_ok && fresh) || node.capacity == 0 {
            return None;
        }
        if spec.dedicated && node.stats.sessions > 0 {
            return None;
        }
        let condition = conditions.of(node);
        if condition.refuses() {
            return None;
        }
        let limit = f64::from(spec.limit(node.capacity));
        // Observed load believed with nothing committed is a floor under the effective load.
        if believed_given(node, 0, &condition) + f64::from(demand) > limit {
            return None;
        }
        let on_node = snapshot.sessions.on_node(&node.id);
        let committed = on_node.committed();
        let used = committed > 0 || node.stats.sessions > 0;
        let sharing_ok = if spec.dedicated {
            !used
        } else {
            !on_node.carries_dedicated()
        };
        if !sharing_ok {
            return None;
        }
        let load = NodeLoad::given(node, committed, &condition);
        let after = load.effective() + f64::from(demand);
        if after > limit {
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
}
