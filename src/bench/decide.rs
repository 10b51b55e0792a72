//! `ionctl bench decide`: how long production's pure `placement::decide` and `autoscale::plan`
//! take on a synthetic cluster of N nodes, in process, with no etcd. The cluster looks like the
//! one `ionctl bench fleet` registers (four machine types, a few meetings per node, some load),
//! with a few drained and held nodes; the requests are new sessions of the shared classes and
//! participants joining existing ones. Each call is timed on its own, so the figures are
//! percentiles, not means.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::percentile;
use crate::autoscale;
use crate::capacity::{ClassSpec, DEFAULT_UNITS_PER_VCPU, MachineType, Sessions};
use crate::fleet::{MACHINE_TYPES, node_id};
use crate::model::{NodeRecord, NodeStats, SessionClass, SessionRecord, SessionState};
use crate::placement::{Decision, Policy, Request, Role, Snapshot, Strategy, decide};

/// Figures for one cluster size.
#[derive(Debug, Clone, Serialize)]
pub struct DecideResult {
    pub nodes: u32,
    pub sessions: usize,
    pub decisions: u32,
    pub decide_p50_us: f64,
    pub decide_p99_us: f64,
    pub decide_max_us: f64,
    /// Decisions that placed the session (the rest found it placed already, or no room).
    pub placed: u32,
    pub plans: u32,
    pub plan_p50_us: f64,
    pub plan_p99_us: f64,
}

/// A cluster like the one `ionctl bench fleet` registers: `nodes` nodes carrying `sessions_per_node` meetings of 6 each (fewer where
/// they do not fit), at `now`.
pub fn synthetic_cluster(nodes: u32, sessions_per_node: u32, now: SystemTime) -> Snapshot {
    let mut snapshot = Snapshot {
        revision: 1,
        now,
        nodes: Vec::with_capacity(nodes as usize),
        sessions: Sessions::new(),
        drains: BTreeSet::new(),
        pending: Vec::new(),
        instances: Vec::new(),
    };
    let meeting = ClassSpec::of(SessionClass::Meeting);
    let demand = meeting.demand(6).expect("a meeting of 6 is valid");
    for i in 0..nodes {
        let machine = MachineType::by_name(MACHINE_TYPES[i as usize % MACHINE_TYPES.len()])
            .expect("in the catalogue");
        let capacity = machine.capacity(DEFAULT_UNITS_PER_VCPU);
        let id = node_id(i);
        // Nodes a quarter of which are empty, the rest with 1..=sessions_per_node meetings.
        let carried = if i % 4 == 3 {
            0
        } else {
            (1 + i % sessions_per_node.max(1)).min(meeting.limit(capacity) / demand)
        };
        for s in 0..carried {
            snapshot.sessions.put(SessionRecord {
                sid: format!("{id}-m{s}"),
                class: SessionClass::Meeting,
                size: 6,
                demand,
                node: id.clone(),
                state: SessionState::Live,
                relays: Vec::new(),
                edge_demand: 0,
                created_at: now - Duration::from_secs(600),
            });
        }
        let mut node = NodeRecord {
            started_at: now - Duration::from_secs(3600),
            stats: NodeStats {
                sessions: carried,
                peers: carried * 6,
                ..NodeStats::default()
            },
            ..NodeRecord::blank(&id, machine.name, machine.vcpus, capacity, now)
        }
        .spending(f64::from(carried * demand) / f64::from(capacity));
        if i % 97 == 5 {
            node.hold_for = Some(format!("held-{i}"));
        }
        if i % 89 == 7 {
            snapshot.drains.insert(id.clone());
        }
        snapshot.nodes.push(node);
    }
    snapshot
}

/// The `i`th request of the mix: new groups, meetings and conferences, and publishers joining
/// sessions that already exist.
fn request(i: u32, snapshot: &Snapshot) -> Request {
    let (sid, class, size) = match i % 10 {
        0..=3 => (format!("new-{i}"), SessionClass::Meeting, 10),
        4..=6 => (format!("new-{i}"), SessionClass::Group, 4),
        7 => (format!("new-{i}"), SessionClass::Conference, 200),
        _ => {
            let sessions = snapshot.sessions.as_slice();
            let existing = &sessions[(i as usize * 7919) % sessions.len()];
            (existing.sid.clone(), existing.class, existing.size)
        }
    };
    Request {
        sid,
        class,
        size,
        strategy: Strategy::Binpack,
        role: Role::Publisher,
        uid: None,
    }
}

/// Times `decisions` calls of `decide` and `plans` calls of `plan` on a cluster of `nodes`.
pub fn run(nodes: u32, sessions_per_node: u32, decisions: u32, plans: u32) -> DecideResult {
    let now = SystemTime::now();
    let snapshot = synthetic_cluster(nodes, sessions_per_node, now);
    let policy = Policy::default();
    let mut decide_us = Vec::with_capacity(decisions as usize);
    let mut placed = 0;
    for i in 0..decisions {
        let request = request(i, &snapshot);
        let begun = Instant::now();
        let decision = black_box(decide(black_box(&snapshot), &request, &policy));
        decide_us.push(begun.elapsed().as_secs_f64() * 1e6);
        placed += u32::from(matches!(decision, Decision::Place { .. }));
    }
    let planned = autoscale::Snapshot {
        now,
        nodes: snapshot.nodes.clone(),
        sessions: snapshot.sessions.clone(),
        drains: snapshot
            .drains
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    crate::model::DrainRequest {
                        requested_at: now,
                        deadline: None,
                        reason: Some("bench".to_owned()),
                    },
                )
            })
            .collect(),
        pending: Vec::new(),
        instances: Vec::new(),
        idle_since: snapshot
            .nodes
            .iter()
            .filter(|n| n.stats.sessions == 0)
            .map(|n| (n.id.clone(), now - Duration::from_secs(60)))
            .collect::<BTreeMap<_, _>>(),
        recent_spawns: Vec::new(),
    };
    let plan_policy = autoscale::Policy {
        max_nodes: nodes * 2,
        ..autoscale::Policy::default()
    };
    let mut plan_us = Vec::with_capacity(plans as usize);
    for _ in 0..plans {
        let begun = Instant::now();
        black_box(autoscale::plan(black_box(&planned), &plan_policy));
        plan_us.push(begun.elapsed().as_secs_f64() * 1e6);
    }
    let max = decide_us.iter().copied().fold(0.0, f64::max);
    DecideResult {
        nodes,
        sessions: snapshot.sessions.len(),
        decisions,
        decide_p50_us: percentile(&decide_us, 50),
        decide_p99_us: percentile(&decide_us, 99),
        decide_max_us: max,
        placed,
        plans,
        plan_p50_us: percentile(&plan_us, 50),
        plan_p99_us: percentile(&plan_us, 99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_cluster_takes_new_sessions_and_finds_existing_ones() {
        let result = run(200, 4, 100, 2);
        assert_eq!(result.decisions, 100);
        // 7 in 10 requests are new sessions of shared classes that fit somewhere.
        assert!(result.placed >= 60, "{result:?}");
        assert!(result.sessions > 200);
        assert!(result.decide_p50_us > 0.0 && result.decide_p99_us >= result.decide_p50_us);
    }
}
