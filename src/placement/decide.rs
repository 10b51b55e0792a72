//! The decision: affinity first (a viewer of a session that spans nodes goes to its edge with
//! the most room), then the class rules, then an instance already booting for the session,
//! then the best eligible node by the request's strategy, then a livestream split over free
//! nodes, else the capacity that would be needed.

use std::cmp::Ordering;

use super::eligible::{Candidate, candidates};
use super::{Decision, Policy, Request, Role, Snapshot, Strategy};
use crate::capacity::{
    ClassSpec, MAX_SPAN_NODES, NodeLoad, largest, smallest_fitting, span_nodes, split_shares,
};
use crate::model::{SessionRecord, Units};

/// Where the session of `request` goes, given `snapshot` and `policy`. Pure and deterministic:
/// the same inputs give the same decision, whatever the order of nodes in the snapshot.
pub fn decide(snapshot: &Snapshot, request: &Request, policy: &Policy) -> Decision {
    if let Some(existing) = snapshot.sessions.get(&request.sid) {
        return match request.role {
            Role::Viewer => viewer_decision(snapshot, existing, request.uid.as_deref(), policy),
            Role::Publisher => Decision::Existing {
                node: existing.node.clone(),
            },
        };
    }
    let spec = ClassSpec::of(request.class);
    let demand = match spec.demand(request.size) {
        Ok(demand) => demand,
        Err(error) => {
            return Decision::Refuse {
                reason: error.to_string(),
            };
        }
    };
    if let Some(instance) = snapshot.booting_for(&request.sid, policy.boot_wait) {
        // Taking another node now would strand the instance started for this session.
        return Decision::NeedCapacity {
            demand,
            machine_type: instance.machine_type.clone(),
            count: 1,
            hold_for: instance.hold_for.clone(),
            booting: Some(instance.name.clone()),
        };
    }
    let best = candidates(snapshot, &request.sid, &spec, demand, policy)
        .min_by(|a, b| rank(a, b, request.strategy));
    if let Some(best) = best {
        return Decision::Place {
            node: best.node.id.clone(),
            demand,
        };
    }
    // Free nodes now beat one bigger machine in a minute: a livestream or a conference
    // spans them.
    if spec.spans
        && let Some(split) = split(snapshot, request, &spec, demand, policy)
    {
        return split;
    }
    let hold_for = spec.dedicated.then(|| request.sid.clone());
    if let Some(machine) = smallest_fitting(demand, policy.units_per_vcpu, &spec) {
        return Decision::NeedCapacity {
            demand,
            machine_type: machine.name.to_owned(),
            count: 1,
            hold_for,
            booting: None,
        };
    }
    let biggest = largest();
    let per_machine = spec.limit(biggest.capacity(policy.units_per_vcpu));
    if spec.spans
        && let Some(count) = span_nodes(request.class, request.size, demand, per_machine)
    {
        // A session beyond one machine and beyond what the free nodes can split: how many of
        // the largest machines it would span.
        return Decision::NeedCapacity {
            demand,
            machine_type: biggest.name.to_owned(),
            count,
            hold_for,
            booting: None,
        };
    }
    Decision::Refuse {
        reason: format!(
            "a {} of {} needs {demand} units, more than the largest machine type ({}, {} units \
             usable at {} units per vCPU and headroom {}) can hold; split the session or \
             raise units_per_vcpu after calibration",
            request.class,
            request.size,
            biggest.name,
            per_machine,
            policy.units_per_vcpu,
            spec.headroom
        ),
    }
}

/// `Less` means `a` wins. A node held for this session beats everything; then binpack prefers
/// used nodes and the highest utilisation after placement, spread the lowest; ties go to the
/// smaller capacity, then to the node id.
fn rank(a: &Candidate<'_>, b: &Candidate<'_>, strategy: Strategy) -> Ordering {
    let by_utilisation = match strategy {
        Strategy::Binpack => b
            .used
            .cmp(&a.used)
            .then(b.utilisation_after.total_cmp(&a.utilisation_after)),
        Strategy::Spread => a.utilisation_after.total_cmp(&b.utilisation_after),
    };
    b.held_for_this
        .cmp(&a.held_for_this)
        .then(by_utilisation)
        .then(a.node.capacity.cmp(&b.node.capacity))
        .then_with(|| a.node.id.cmp(&b.node.id))
}

/// Units a node can still take for a session of `spec`: its limit under the class headroom
/// less its effective load.
fn room(spec: &ClassSpec, candidate: &Candidate<'_>) -> Units {
    let used = candidate.load.effective().ceil() as Units;
    spec.limit(candidate.node.capacity).saturating_sub(used)
}

/// A livestream or conference over the fewest eligible nodes that hold it: the one with the
/// most room is the origin, and each node takes its share by [`split_shares`]. None when the
/// nodes together are too small.
fn split(
    snapshot: &Snapshot,
    request: &Request,
    spec: &ClassSpec,
    demand: Units,
    policy: &Policy,
) -> Option<Decision> {
    let rooms = most_room(
        candidates(snapshot, &request.sid, spec, 1, policy)
            .map(|c| (room(spec, &c), c.node.id.as_str()))
            .filter(|(room, _)| *room > 0),
        MAX_SPAN_NODES as usize,
    );
    let most = rooms.len();
    (2..=most).find_map(|nodes| {
        let (origin_demand, edge_demand) =
            split_shares(request.class, request.size, demand, nodes as u32);
        (rooms[0].0 >= origin_demand && rooms[nodes - 1].0 >= edge_demand).then(|| {
            Decision::Split {
                origin: rooms[0].1.to_owned(),
                edges: rooms[1..nodes]
                    .iter()
                    .map(|(_, id)| (*id).to_owned())
                    .collect(),
                origin_demand,
                edge_demand,
            }
        })
    })
}

/// The `keep` entries of `rooms` with the most room, most first, ties to the smaller id. A
/// split uses at most [`MAX_SPAN_NODES`] nodes, so sorting every eligible node was waste.
pub(super) fn most_room<'a>(
    rooms: impl Iterator<Item = (Units, &'a str)>,
    keep: usize,
) -> Vec<(Units, &'a str)> {
    let mut most: Vec<(Units, &str)> = Vec::with_capacity(keep + 1);
    for (room, id) in rooms {
        let at = most.partition_point(|(r, i)| *r > room || (*r == room && *i < id));
        if at < keep {
            most.insert(at, (room, id));
            most.truncate(keep);
        }
    }
    most
}

/// One of `rooms` drawn in proportion to its room by a hash of `uid`: the same viewer gets
/// the same node while the rooms stand. None when no node has room.
fn drawn_by_room<'a>(rooms: &[(Units, &'a str)], uid: &str) -> Option<(Units, &'a str)> {
    let total: u64 = rooms.iter().map(|(room, _)| u64::from(*room)).sum();
    if total == 0 {
        return None;
    }
    // FNV-1a: stable across runs and builds, unlike the standard library's hasher.
    let hash = uid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut point = hash % total;
    rooms.iter().copied().find(|(room, _)| {
        let inside = point < u64::from(*room);
        point = point.saturating_sub(u64::from(*room));
        inside
    })
}

/// Where a new viewer of `session` goes: among its nodes (origin and edges) with room, the
/// one with the most room; with the viewer's `uid`, one drawn in proportion to room by a
/// hash of it, so that a burst of viewers spreads over the nodes before their load shows.
/// When every node of a session that may span nodes is full, a free node becomes one more
/// edge, with the share each edge has.
fn viewer_decision(
    snapshot: &Snapshot,
    session: &SessionRecord,
    uid: Option<&str>,
    policy: &Policy,
) -> Decision {
    let spec = ClassSpec::of(session.class);
    let rules = policy.load_rules();
    let room_of = |id: &str| {
        snapshot.nodes.iter().find(|n| n.id == id).map(|node| {
            let committed = snapshot.sessions.on_node(id).committed();
            let load = NodeLoad::of(node, committed, snapshot.now, &rules);
            let used = load.effective().ceil() as Units;
            spec.limit(node.capacity).saturating_sub(used)
        })
    };
    // Every node of the session that is still registered: the origin's share holds viewers
    // too, beside the relays it feeds.
    let mut rooms: Vec<(Units, &str)> = session
        .nodes()
        .filter_map(|id| room_of(id).map(|room| (room, id)))
        .collect();
    rooms.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let best = match uid {
        Some(uid) => drawn_by_room(&rooms, uid).or(rooms.first().copied()),
        None => rooms.first().copied(),
    };
    let best_node = best.map_or(session.node.as_str(), |(_, id)| id).to_owned();
    if best.is_some_and(|(room, _)| room > 0) || !spec.spans {
        return Decision::Existing { node: best_node };
    }
    // Full: a free node joins as an edge, with the share each edge has (or the origin's, for
    // the first edge of a session that fit one node).
    let share = if session.edge_demand > 0 {
        session.edge_demand
    } else {
        session.demand
    };
    let free = candidates(snapshot, &session.sid, &spec, share, policy)
        .min_by(|a, b| rank(a, b, Strategy::Spread));
    if let Some(edge) = free {
        return Decision::Extend {
            edge: edge.node.id.clone(),
            edge_demand: share,
        };
    }
    // No free node: a new one, held for the session. A full edge is never overbooked.
    let booting = snapshot.booting_for(&session.sid, policy.boot_wait);
    let machine = smallest_fitting(share, policy.units_per_vcpu, &spec).unwrap_or_else(largest);
    Decision::NeedCapacity {
        demand: share,
        machine_type: booting
            .map_or(machine.name, |i| i.machine_type.as_str())
            .to_owned(),
        count: 1,
        hold_for: Some(session.sid.clone()),
        booting: booting.map(|i| i.name.clone()),
    }
}
