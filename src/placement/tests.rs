//! Examples and properties of `decide`, on snapshots built in memory with simulated time.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::{Decision, Policy, Request, Role, Snapshot, Strategy as Pick, candidates, decide};
use crate::capacity::ClassSpec;
use crate::model::{
    NodeRecord, NodeState, NodeStats, SessionClass, SessionRecord, SessionState, Units,
};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// A node whose agent spends `cpu` of its vCPUs; one that spends anything carries a session,
/// since an empty node's CPU is never taken as load.
fn node(id: &str, vcpus: u32, cpu: f64) -> NodeRecord {
    let capacity = vcpus * 150;
    let machine_type = format!("n2-highcpu-{vcpus}");
    NodeRecord {
        started_at: at(0),
        stats: NodeStats {
            sessions: u32::from(cpu > 0.0),
            ..NodeStats::default()
        },
        ..NodeRecord::blank(id, &machine_type, vcpus, capacity, at(100))
    }
    .spending(cpu)
}

fn session(sid: &str, node: &str, class: SessionClass, demand: Units) -> SessionRecord {
    SessionRecord {
        sid: sid.to_owned(),
        class,
        size: 2,
        demand,
        node: node.to_owned(),
        state: SessionState::Reserved,
        relays: Vec::new(),
        edge_demand: 0,
        created_at: at(90),
    }
}

fn snapshot(nodes: Vec<NodeRecord>, sessions: Vec<SessionRecord>) -> Snapshot {
    Snapshot {
        revision: 7,
        now: at(105),
        nodes,
        sessions: sessions.into(),
        drains: BTreeSet::new(),
        pending: Vec::new(),
        instances: Vec::new(),
    }
}

fn request(sid: &str, class: SessionClass, size: u32) -> Request {
    Request {
        sid: sid.to_owned(),
        class,
        size,
        strategy: Pick::Binpack,
        role: Role::Publisher,
        uid: None,
    }
}

fn placed_on(decision: &Decision) -> Option<&str> {
    match decision {
        Decision::Place { node, .. } => Some(node),
        _ => None,
    }
}

#[test]
fn binpack_fills_one_node_before_the_next() {
    let mut snap = snapshot(
        vec![node("a", 2, 0.0), node("b", 2, 0.0), node("c", 2, 0.0)],
        vec![],
    );
    let policy = Policy::default();
    for i in 0..9 {
        let sid = format!("s{i}");
        // A group of 6 costs 30 units; a 2-vCPU node holds 270 under 0.90: nine of them.
        let decision = decide(&snap, &request(&sid, SessionClass::Group, 6), &policy);
        assert_eq!(placed_on(&decision), Some("a"), "session {i}: {decision:?}");
        snap.sessions
            .put(session(&sid, "a", SessionClass::Group, 30));
    }
    let decision = decide(&snap, &request("s9", SessionClass::Group, 6), &policy);
    assert_eq!(placed_on(&decision), Some("b"));
}

#[test]
fn spread_takes_the_least_utilised_node() {
    let snap = snapshot(
        vec![node("a", 2, 0.5), node("b", 2, 0.2), node("c", 2, 0.3)],
        vec![],
    );
    let mut req = request("s", SessionClass::Group, 3);
    req.strategy = Pick::Spread;
    assert_eq!(
        placed_on(&decide(&snap, &req, &Policy::default())),
        Some("b")
    );
}

#[test]
fn load_is_compared_in_units_not_raw_cpu() {
    // The 1-vCPU node at 1% carries 1.5 units and the 16-vCPU node at 10% carries 240, but a
    // meeting of 15 (135 units) only fits the big one: 1.5 + 135 > 150 × 0.8.
    let snap = snapshot(vec![node("small", 1, 0.01), node("big", 16, 0.10)], vec![]);
    let req = request("s", SessionClass::Meeting, 15);
    assert_eq!(
        placed_on(&decide(&snap, &req, &Policy::default())),
        Some("big")
    );
}

#[test]
fn committed_units_count_before_the_cpu_rises() {
    let snap = snapshot(
        vec![node("a", 2, 0.0)],
        vec![session("s1", "a", SessionClass::Group, 250)],
    );
    let decision = decide(
        &snap,
        &request("s2", SessionClass::Group, 6),
        &Policy::default(),
    );
    assert!(
        matches!(decision, Decision::NeedCapacity { demand: 30, .. }),
        "{decision:?}"
    );
}

#[test]
fn class_headroom_decides_admission() {
    // 2 vCPUs = 300 units with 240 effective (80%): a group of 3 (6 units) reaches 82%, under
    // its 0.90; a meeting of 3 (6 units) would pass 0.80.
    let snap = snapshot(vec![node("a", 2, 0.80)], vec![]);
    let policy = Policy::default();
    assert_eq!(
        placed_on(&decide(
            &snap,
            &request("g", SessionClass::Group, 3),
            &policy
        )),
        Some("a")
    );
    let decision = decide(&snap, &request("m", SessionClass::Meeting, 3), &policy);
    assert!(
        matches!(decision, Decision::NeedCapacity { .. }),
        "{decision:?}"
    );
}

#[test]
fn draining_held_stale_and_dedicated_nodes_are_skipped() {
    let mut draining = node("draining", 8, 0.0);
    draining.state = NodeState::Draining;
    let mut held = node("held", 8, 0.0);
    held.hold_for = Some("other".to_owned());
    let mut stale = node("stale", 8, 0.0);
    stale.updated_at = at(0);
    let drained = node("drained", 8, 0.0);
    let dedicated = node("dedicated", 8, 0.0);
    let mut snap = snapshot(
        vec![
            draining,
            held,
            stale,
            drained,
            dedicated,
            node("ok", 1, 0.0),
        ],
        vec![session("rec", "dedicated", SessionClass::Recording, 1)],
    );
    snap.drains.insert("drained".to_owned());
    let decision = decide(
        &snap,
        &request("s", SessionClass::Group, 2),
        &Policy::default(),
    );
    assert_eq!(placed_on(&decision), Some("ok"));
}

#[test]
fn a_host_busy_with_other_work_is_not_chosen_unless_shared() {
    // "crowded" would win binpack (smaller); other processes use 95% of its host.
    let mut crowded = node("crowded", 2, 0.0);
    crowded.stats.cpu = 0.97;
    crowded.stats.other_cpu = 0.95;
    let snap = snapshot(vec![crowded.clone(), node("roomy", 8, 0.0)], vec![]);
    let req = request("g", SessionClass::Group, 2);
    assert_eq!(
        placed_on(&decide(&snap, &req, &Policy::default())),
        Some("roomy")
    );
    // The same figures from agents that share their host with each other are no signal.
    let mut shared = crowded;
    shared.shared_host = true;
    let snap = snapshot(vec![shared, node("roomy", 8, 0.0)], vec![]);
    assert_eq!(
        placed_on(&decide(&snap, &req, &Policy::default())),
        Some("crowded")
    );
}

#[test]
fn a_fresh_node_is_judged_by_committed_demand_only() {
    // Started 20 s before `now`: inside the default 60 s warm-up, its busy CPU (boot work,
    // a guest agent) is not load, and a busy host is not held against it either.
    let mut fresh = node("fresh", 2, 0.9);
    fresh.started_at = at(85);
    fresh.stats.other_cpu = 0.95;
    let snap = snapshot(
        vec![fresh],
        vec![session("x", "fresh", SessionClass::Group, 200)],
    );
    let policy = Policy::default();
    // 200 committed of 300; a meeting's 0.80 leaves 40: 3 people (6 units) fit, 8 (56) do not.
    assert_eq!(
        placed_on(&decide(
            &snap,
            &request("m", SessionClass::Meeting, 3),
            &policy
        )),
        Some("fresh")
    );
    let decision = decide(&snap, &request("m", SessionClass::Meeting, 8), &policy);
    assert!(
        matches!(decision, Decision::NeedCapacity { .. }),
        "{decision:?}"
    );
    // After the warm-up the same CPU counts: 270 observed units leave no room.
    let mut later = snap.clone();
    later.now = at(200);
    later.nodes[0].updated_at = at(199);
    later.nodes[0].stats.other_cpu = 0.0;
    let decision = decide(&later, &request("m", SessionClass::Meeting, 3), &policy);
    assert!(
        matches!(decision, Decision::NeedCapacity { .. }),
        "{decision:?}"
    );
}

#[test]
fn a_hold_ends_for_placement_once_its_session_is_reserved_there() {
    let mut held = node("held", 4, 0.0);
    held.hold_for = Some("m1".to_owned());
    let req = request("m2", SessionClass::Meeting, 4);
    let snap = snapshot(vec![held.clone()], vec![]);
    assert!(matches!(
        decide(&snap, &req, &Policy::default()),
        Decision::NeedCapacity { .. }
    ));
    let snap = snapshot(
        vec![held],
        vec![session("m1", "held", SessionClass::Meeting, 36)],
    );
    assert_eq!(
        placed_on(&decide(&snap, &req, &Policy::default())),
        Some("held")
    );
}

#[test]
fn a_session_waits_for_the_instance_booting_for_it() {
    let instance = |name: &str, hold: &str| crate::model::InstanceRecord {
        name: name.to_owned(),
        provider: "local".to_owned(),
        zone: "z".to_owned(),
        machine_type: "n2-highcpu-4".to_owned(),
        hold_for: Some(hold.to_owned()),
        demands: vec![hold.to_owned()],
        state: crate::model::InstanceState::Booting,
        created_at: at(100),
        registered_at: None,
        note: None,
    };
    let mut snap = snapshot(vec![node("other", 8, 0.0)], vec![]);
    snap.instances.push(instance("i-ls1", "ls1"));
    let policy = Policy::default();
    let req = request("ls1", SessionClass::Livestream, 300);
    let decision = decide(&snap, &req, &policy);
    assert_eq!(
        decision,
        Decision::NeedCapacity {
            demand: 300,
            machine_type: "n2-highcpu-4".to_owned(),
            count: 1,
            hold_for: Some("ls1".to_owned()),
            booting: Some("i-ls1".to_owned()),
        }
    );
    // Another session is not held up by it.
    assert_eq!(
        placed_on(&decide(
            &snap,
            &request("ls2", SessionClass::Livestream, 300),
            &policy
        )),
        Some("other")
    );
    // Once its node registers, that node takes it.
    let mut registered = node("i-ls1", 4, 0.0);
    registered.hold_for = Some("ls1".to_owned());
    snap.nodes.push(registered);
    assert_eq!(placed_on(&decide(&snap, &req, &policy)), Some("i-ls1"));
    // An instance in flight past boot_wait is taken as failed.
    snap.nodes.pop();
    snap.now = at(100) + policy.boot_wait + Duration::from_secs(1);
    snap.nodes[0].updated_at = snap.now;
    assert_eq!(placed_on(&decide(&snap, &req, &policy)), Some("other"));
}

#[test]
fn a_dedicated_session_takes_its_held_node_or_asks_for_one() {
    let mut held = node("held", 2, 0.0);
    held.hold_for = Some("live".to_owned());
    let busy = node("busy", 8, 0.0);
    let snap = snapshot(
        vec![node("empty", 4, 0.0), held.clone(), busy],
        vec![session("x", "busy", SessionClass::Group, 2)],
    );
    let policy = Policy::default();
    let req = request("live", SessionClass::Livestream, 100);
    assert_eq!(placed_on(&decide(&snap, &req, &policy)), Some("held"));
    // Without the held node it takes the empty one, never the busy one.
    let mut without = snap.clone();
    without.nodes.retain(|n| n.id != "held");
    assert_eq!(placed_on(&decide(&without, &req, &policy)), Some("empty"));
    without.nodes.retain(|n| n.id != "empty");
    let decision = decide(&without, &req, &policy);
    assert_eq!(
        decision,
        Decision::NeedCapacity {
            demand: 100,
            machine_type: "n1-standard-1".to_owned(),
            count: 1,
            hold_for: Some("live".to_owned()),
            booting: None,
        }
    );
    // Larger than the largest machine: the relay would split it; for now, how many machines.
    let huge = request("huge", SessionClass::Livestream, 10_000);
    let decision = decide(&without, &huge, &policy);
    assert!(
        matches!(&decision, Decision::NeedCapacity { machine_type, count: 3, .. } if machine_type == "n2-highcpu-32"),
        "{decision:?}"
    );
}

#[test]
fn no_capacity_names_the_smallest_machine_that_fits() {
    let snap = snapshot(vec![node("a", 1, 0.0)], vec![]);
    let decision = decide(
        &snap,
        &request("c", SessionClass::Conference, 300),
        &Policy::default(),
    );
    assert_eq!(
        decision,
        Decision::NeedCapacity {
            demand: 1794,
            machine_type: "n2-highcpu-16".to_owned(),
            count: 1,
            hold_for: None,
            booting: None,
        }
    );
    // Beyond the largest machine (240 units at 10 per vCPU), a conference spans several:
    // 1794 / 8 + 12 = 237 each.
    let small = Policy {
        units_per_vcpu: 10,
        ..Policy::default()
    };
    let decision = decide(&snap, &request("c", SessionClass::Conference, 300), &small);
    assert!(
        matches!(&decision, Decision::NeedCapacity { machine_type, count: 8, .. } if machine_type == "n2-highcpu-32"),
        "{decision:?}"
    );
    // Beyond 16 of them, it is refused.
    let tiny = Policy {
        units_per_vcpu: 1,
        ..Policy::default()
    };
    let decision = decide(&snap, &request("c", SessionClass::Conference, 300), &tiny);
    assert!(matches!(&decision, Decision::Refuse { reason } if reason.contains("n2-highcpu-32")));
}

#[test]
fn an_out_of_range_size_is_refused_naming_the_class() {
    let snap = snapshot(vec![node("a", 32, 0.0)], vec![]);
    let decision = decide(
        &snap,
        &request("g", SessionClass::Group, 7),
        &Policy::default(),
    );
    assert!(
        matches!(&decision, Decision::Refuse { reason } if reason.contains("class meeting")),
        "{decision:?}"
    );
}

// ---- properties ----

fn arb_node(id: usize) -> impl Strategy<Value = NodeRecord> {
    (
        prop::sample::select(vec![1u32, 2, 4, 8, 16]),
        0.0f64..1.0,
        prop::option::weighted(0.1, Just("held".to_owned())),
        prop::bool::weighted(0.1),
        0u64..60,
    )
        .prop_map(move |(vcpus, cpu, hold_for, draining, age)| {
            let mut n = node(&format!("n{id}"), vcpus, cpu);
            n.hold_for = hold_for;
            if draining {
                n.state = NodeState::Draining;
            }
            n.updated_at = at(105 - age);
            n
        })
}

fn arb_class() -> impl Strategy<Value = SessionClass> {
    prop::sample::select(vec![
        SessionClass::Group,
        SessionClass::Meeting,
        SessionClass::Conference,
        SessionClass::Livestream,
        SessionClass::Recording,
    ])
}

prop_compose! {
    fn arb_snapshot()(n in 1usize..8)(
        nodes in (0..n).map(arb_node).collect::<Vec<_>>(),
        sessions in prop::collection::vec((0..n, arb_class(), 1u32..400), 0..12),
    ) -> Snapshot {
        let sessions = sessions
            .into_iter()
            .enumerate()
            .map(|(i, (on, class, demand))| session(&format!("s{i}"), &format!("n{on}"), class, demand))
            .collect();
        snapshot(nodes, sessions)
    }
}

fn arb_request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(vec!["new", "s0", "s3", "held"]),
        arb_class(),
        1u32..400,
        prop::bool::ANY,
    )
        .prop_map(|(sid, class, size, spread)| Request {
            sid: sid.to_owned(),
            class,
            size,
            strategy: if spread { Pick::Spread } else { Pick::Binpack },
            role: Role::Publisher,
            uid: None,
        })
}

fn committed(snap: &Snapshot, node: &str) -> Units {
    crate::capacity::committed_units(node, &snap.sessions)
}

proptest! {
    #[test]
    fn never_above_headroom(snap in arb_snapshot(), req in arb_request()) {
        let decision = decide(&snap, &req, &Policy::default());
        if let Decision::Place { node, demand } = &decision {
            let spec = ClassSpec::of(req.class);
            prop_assert_eq!(Ok(*demand), spec.demand(req.size));
            let record = snap.nodes.iter().find(|n| &n.id == node).expect("a known node");
            let on_node = committed(&snap, node);
            let rules = Policy::default().load_rules();
            let observed = crate::capacity::believed_observed(record, on_node, snap.now, &rules);
            let effective = observed.max(f64::from(on_node));
            prop_assert!(effective + f64::from(*demand) <= f64::from(spec.limit(record.capacity)));
            prop_assert!(record.state == NodeState::Ready);
            prop_assert!(!crate::capacity::condition(record, snap.now, &rules).refuses());
            let hold_served = |held: &str| snap.sessions.iter().any(|s| s.sid == held && &s.node == node);
            prop_assert!(record.hold_for.as_deref().is_none_or(|h| h == req.sid || hold_served(h)));
            prop_assert!(record.stats_age(snap.now) <= Policy::default().stats_max_age);
        }
    }

    #[test]
    fn an_empty_node_is_never_refused_for_lack_of_units(
        snap in arb_snapshot(),
        req in arb_request(),
        agent_cpu in 0.0f64..3.0,
    ) {
        // Whatever its CPU shows, an empty eligible node whose capacity fits the demand takes
        // the session (or another node does).
        let mut snap = snap;
        let empty = node("empty", 16, 0.0).spending(agent_cpu);
        snap.nodes.push(empty);
        let spec = ClassSpec::of(req.class);
        let Ok(demand) = spec.demand(req.size) else { return Ok(()); };
        if snap.sessions.iter().any(|s| s.sid == req.sid) || demand > spec.limit(16 * 150) {
            return Ok(());
        }
        let decision = decide(&snap, &req, &Policy::default());
        prop_assert!(matches!(decision, Decision::Place { .. }), "{:?}", decision);
    }

    #[test]
    fn deterministic_whatever_the_order(snap in arb_snapshot(), req in arb_request(), seed in any::<u64>()) {
        let policy = Policy::default();
        let first = decide(&snap, &req, &policy);
        prop_assert_eq!(&first, &decide(&snap, &req, &policy));
        let mut shuffled = snap.clone();
        let len = shuffled.nodes.len();
        shuffled.nodes.rotate_left((seed as usize) % len);
        shuffled.nodes.reverse();
        shuffled.sessions = shuffled.sessions.iter().rev().cloned().collect();
        prop_assert_eq!(first, decide(&shuffled, &req, &policy));
    }

    #[test]
    fn binpack_never_opens_an_empty_node_while_a_used_one_fits(snap in arb_snapshot(), req in arb_request()) {
        let mut req = req;
        req.strategy = Pick::Binpack;
        let decision = decide(&snap, &req, &Policy::default());
        if let Decision::Place { node, demand } = &decision {
            // Used as placement counts it: committed units, or sessions the agent reports.
            let is_used = |id: &str| {
                committed(&snap, id) > 0
                    || snap.nodes.iter().any(|n| n.id == id && n.stats.sessions > 0)
            };
            let spec = ClassSpec::of(req.class);
            let eligible = candidates(&snap, &req.sid, &spec, *demand, &Policy::default()).collect::<Vec<_>>();
            let chosen = eligible.iter().find(|c| &c.node.id == node).expect("chosen is eligible");
            if !is_used(node) && !chosen.held_for_this {
                prop_assert!(!eligible.iter().any(|c| is_used(&c.node.id) && !c.held_for_this),
                    "opened {} while a used node fits", node);
            }
        }
    }

    #[test]
    fn affinity_wins(snap in arb_snapshot(), req in arb_request()) {
        let decision = decide(&snap, &req, &Policy::default());
        if let Some(existing) = snap.sessions.iter().find(|s| s.sid == req.sid) {
            prop_assert_eq!(decision, Decision::Existing { node: existing.node.clone() });
        } else {
            let is_existing = matches!(decision, Decision::Existing { .. });
            prop_assert!(!is_existing);
        }
    }
}

#[test]
fn a_livestream_larger_than_any_free_node_spans_the_fewest_that_hold_it() {
    // Three free 2-vCPU nodes (300 units, 255 for a livestream) and a busy big one.
    let snap = snapshot(
        vec![
            node("a", 2, 0.0),
            node("b", 2, 0.0),
            node("c", 2, 0.0),
            node("busy", 8, 0.0),
        ],
        vec![session("x", "busy", SessionClass::Group, 2)],
    );
    let policy = Policy::default();
    let decision = decide(
        &snap,
        &request("live", SessionClass::Livestream, 400),
        &policy,
    );
    assert_eq!(
        decision,
        Decision::Split {
            origin: "a".to_owned(),
            edges: vec!["b".to_owned()],
            origin_demand: 201,
            edge_demand: 200,
        }
    );
    // 700 viewers need all three: 234 each, the origin 2 more for its two relays.
    let decision = decide(
        &snap,
        &request("live", SessionClass::Livestream, 700),
        &policy,
    );
    assert_eq!(
        decision,
        Decision::Split {
            origin: "a".to_owned(),
            edges: vec!["b".to_owned(), "c".to_owned()],
            origin_demand: 236,
            edge_demand: 234,
        }
    );
    // More than the three can hold: a machine that can, or several of the largest.
    let decision = decide(
        &snap,
        &request("live", SessionClass::Livestream, 800),
        &policy,
    );
    assert!(
        matches!(decision, Decision::NeedCapacity { .. }),
        "{decision:?}"
    );
}

#[test]
fn viewers_of_a_spanning_session_go_to_its_edge_with_the_most_room() {
    let mut live = session("live", "a", SessionClass::Livestream, 201);
    live.relays = vec!["b".to_owned(), "c".to_owned()];
    live.edge_demand = 100;
    let mut snap = snapshot(
        vec![node("a", 2, 0.0), node("b", 2, 0.0), node("c", 4, 0.0)],
        vec![live],
    );
    let policy = Policy::default();
    let mut viewer = request("live", SessionClass::Livestream, 1);
    viewer.role = Role::Viewer;
    assert_eq!(
        decide(&snap, &viewer, &policy),
        Decision::Existing {
            node: "c".to_owned()
        }
    );
    // The publisher goes to the origin.
    let publisher = request("live", SessionClass::Livestream, 1);
    assert_eq!(
        decide(&snap, &publisher, &policy),
        Decision::Existing {
            node: "a".to_owned()
        }
    );
    // An edge that is gone is not chosen; with none left, the origin takes viewers.
    snap.nodes.retain(|n| n.id != "c");
    assert_eq!(
        decide(&snap, &viewer, &policy),
        Decision::Existing {
            node: "b".to_owned()
        }
    );
    snap.nodes.retain(|n| n.id == "a");
    assert_eq!(
        decide(&snap, &viewer, &policy),
        Decision::Existing {
            node: "a".to_owned()
        }
    );
}

proptest! {
    #[test]
    fn a_split_covers_its_demand_within_every_node_s_room(
        snap in arb_snapshot(),
        size in 1u32..20_000,
    ) {
        let policy = Policy::default();
        let req = request("split", SessionClass::Livestream, size);
        if let Decision::Split { origin, edges, origin_demand, edge_demand } = decide(&snap, &req, &policy) {
            let spec = ClassSpec::of(SessionClass::Livestream);
            let viewers = origin_demand - edges.len() as Units + edge_demand * edges.len() as Units;
            prop_assert!(viewers >= size, "{viewers} < {size}");
            prop_assert!(!edges.contains(&origin));
            for (id, share) in std::iter::once((&origin, origin_demand)).chain(edges.iter().map(|e| (e, edge_demand))) {
                let eligible = candidates(&snap, "split", &spec, share, &policy).collect::<Vec<_>>();
                prop_assert!(eligible.iter().any(|c| &c.node.id == id), "{id} cannot take {share}");
            }
        }
    }
}

#[test]
fn a_viewer_finding_every_edge_full_adds_a_free_node_as_an_edge_or_asks_for_one() {
    let mut live = session("live", "a", SessionClass::Livestream, 151);
    live.relays = vec!["b".to_owned()];
    live.edge_demand = 150;
    // a's and b's agents are at 95% of their 300 units: past the livestream's 255.
    let mut snap = snapshot(
        vec![
            node("a", 2, 0.95),
            node("b", 2, 0.95),
            node("c", 2, 0.0),
            node("d", 4, 0.0),
        ],
        vec![live],
    );
    let policy = Policy::default();
    let mut viewer = request("live", SessionClass::Livestream, 1);
    viewer.role = Role::Viewer;
    // Spread: the free node with the least utilisation after taking the edge's share.
    assert_eq!(
        decide(&snap, &viewer, &policy),
        Decision::Extend {
            edge: "d".to_owned(),
            edge_demand: 150,
        }
    );
    // No free node: one is asked for, held for the session; the full edge is not overbooked.
    snap.nodes.retain(|n| n.id == "a" || n.id == "b");
    let decision = decide(&snap, &viewer, &policy);
    assert!(
        matches!(&decision, Decision::NeedCapacity { demand: 150, count: 1, hold_for: Some(h), .. } if h == "live"),
        "{decision:?}"
    );
}

#[test]
fn a_conference_no_node_holds_spans_shared_nodes_and_grows_by_edges() {
    // 4-vCPU nodes: 600 units, 450 for a conference. A conference of 100 needs 6 × 99 = 594.
    // Unlike a livestream it may share a node: `a` already carries a group.
    let mut snap = snapshot(
        vec![node("a", 4, 0.0), node("b", 4, 0.0)],
        vec![session("x", "a", SessionClass::Group, 2)],
    );
    let policy = Policy::default();
    let decision = decide(
        &snap,
        &request("conf", SessionClass::Conference, 100),
        &policy,
    );
    // Each node: half the streams (297) plus two per speaker (12) for its relays.
    assert_eq!(
        decision,
        Decision::Split {
            origin: "b".to_owned(),
            edges: vec!["a".to_owned()],
            origin_demand: 309,
            edge_demand: 309,
        }
    );
    // Placed on one node that is now full: a participant placed as a viewer adds a free
    // node as an edge, as for a livestream.
    snap.sessions = vec![session("conf", "a", SessionClass::Conference, 400)].into();
    snap.nodes = vec![node("a", 4, 0.95), node("b", 4, 0.0)];
    let mut viewer = request("conf", SessionClass::Conference, 1);
    viewer.role = Role::Viewer;
    assert_eq!(
        decide(&snap, &viewer, &policy),
        Decision::Extend {
            edge: "b".to_owned(),
            edge_demand: 400,
        }
    );
    // A meeting never spans: its full node is where it stays.
    snap.sessions = vec![session("meet", "a", SessionClass::Meeting, 400)].into();
    let mut member = request("meet", SessionClass::Meeting, 1);
    member.role = Role::Viewer;
    assert_eq!(
        decide(&snap, &member, &policy),
        Decision::Existing {
            node: "a".to_owned()
        }
    );
}

#[test]
fn viewers_with_uids_spread_over_the_edges_in_proportion_to_room() {
    // Edges b (300 units, 255 for a livestream) and c (600, 510): c has twice b's room, and
    // the origin a little for viewers beside its relays.
    let mut live = session("live", "a", SessionClass::Livestream, 201);
    live.relays = vec!["b".to_owned(), "c".to_owned()];
    live.edge_demand = 0;
    let snap = snapshot(
        vec![node("a", 2, 0.0), node("b", 2, 0.0), node("c", 4, 0.0)],
        vec![live],
    );
    let policy = Policy::default();
    let mut on = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..3000 {
        let mut viewer = request("live", SessionClass::Livestream, 1);
        viewer.role = Role::Viewer;
        viewer.uid = Some(format!("viewer-{i}"));
        let decision = decide(&snap, &viewer, &policy);
        let Decision::Existing { node } = &decision else {
            panic!("{decision:?}");
        };
        *on.entry(node.clone()).or_default() += 1;
        // The same viewer is routed the same way.
        assert_eq!(decide(&snap, &viewer, &policy), decision);
    }
    // Rooms: a 255 − 201 = 54, b 255, c 510; 819 in all.
    let (a, b, c) = (on["a"], on["b"], on["c"]);
    assert!((140..260).contains(&a), "{on:?}");
    assert!(
        (830..1040).contains(&b) && (1760..1980).contains(&c),
        "{on:?}"
    );
}

proptest! {
    #[test]
    fn a_viewer_is_routed_to_a_node_of_its_session_with_room_when_one_has_it(
        snap in arb_snapshot(),
        uid in "[a-z0-9]{1,12}",
    ) {
        let policy = Policy::default();
        let Some(session) = snap.sessions.iter().next() else { return Ok(()); };
        let mut viewer = request(&session.sid, session.class, 1);
        viewer.role = Role::Viewer;
        viewer.uid = Some(uid);
        let decision = decide(&snap, &viewer, &policy);
        if let Decision::Existing { node } = &decision {
            prop_assert!(session.is_on(node), "{node} is not a node of {}", session.sid);
        }
    }
}

proptest! {
    #[test]
    fn the_roomiest_nodes_are_the_head_of_all_of_them_sorted(
        rooms in proptest::collection::vec((0u32..50, 0u32..500), 0..60),
        keep in 0usize..20,
    ) {
        // Distinct ids, as node ids are.
        let ids: Vec<String> = rooms.iter().enumerate().map(|(k, (_, id))| format!("{id}-{k}")).collect();
        let all: Vec<(Units, &str)> = rooms.iter().zip(&ids).map(|((room, _), id)| (*room, id.as_str())).collect();
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        sorted.truncate(keep);
        prop_assert_eq!(super::decide::most_room(all.into_iter(), keep), sorted);
    }
}
