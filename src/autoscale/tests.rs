//! Examples and properties of `plan`, on snapshots built in memory with simulated time.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::{Action, Cover, DRAIN_REASON_PREFIX, Policy, Snapshot, plan, plan_detailed};
use crate::capacity::{ClassSpec, MachineType};
use crate::model::{
    DrainRequest, InstanceRecord, InstanceState, NodeRecord, NodeState, NodeStats, PendingDemand,
    SessionClass, SessionRecord, SessionState, Units,
};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn node(id: &str, machine_type: &str) -> NodeRecord {
    let vcpus = MachineType::by_name(machine_type).map_or(1, |m| m.vcpus);
    NodeRecord {
        id: id.to_owned(),
        signal_url: format!("ws://{id}/ws"),
        address: "127.0.0.1".to_owned(),
        zone: "local".to_owned(),
        machine_type: machine_type.to_owned(),
        vcpus,
        capacity: vcpus * 150,
        state: NodeState::Ready,
        hold_for: None,
        labels: Default::default(),
        version: "t".to_owned(),
        started_at: at(0),
        stats: NodeStats::default(),
        updated_at: at(1000),
    }
}

fn instance(name: &str, machine_type: &str, state: InstanceState, created: u64) -> InstanceRecord {
    InstanceRecord {
        name: name.to_owned(),
        provider: "local".to_owned(),
        zone: "local".to_owned(),
        machine_type: machine_type.to_owned(),
        hold_for: None,
        state,
        created_at: at(created),
    }
}

fn pending(sid: &str, class: SessionClass, size: u32) -> PendingDemand {
    PendingDemand {
        sid: sid.to_owned(),
        class,
        size,
        demand: ClassSpec::of(class).demand(size).expect("a valid size"),
        machine_type: None,
        since: at(990),
    }
}

fn session(sid: &str, node: &str, demand: Units) -> SessionRecord {
    SessionRecord {
        sid: sid.to_owned(),
        class: SessionClass::Meeting,
        size: 4,
        demand,
        node: node.to_owned(),
        state: SessionState::Live,
        relays: Vec::new(),
        created_at: at(500),
    }
}

fn empty() -> Snapshot {
    Snapshot {
        now: at(1000),
        nodes: Vec::new(),
        sessions: Vec::new(),
        drains: BTreeMap::new(),
        pending: Vec::new(),
        instances: Vec::new(),
        idle_since: BTreeMap::new(),
    }
}

fn spawns(actions: &[Action]) -> Vec<(String, Option<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn {
                machine_type,
                hold_for,
                ..
            } => Some((machine_type.clone(), hold_for.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn each_livestream_gets_its_own_held_instance_of_the_smallest_type() {
    let mut snap = empty();
    snap.nodes.push(node("a", "n2-highcpu-8"));
    for i in 0..5 {
        snap.pending
            .push(pending(&format!("live{i}"), SessionClass::Livestream, 100));
    }
    let actions = plan(&snap, &Policy::default());
    let spawned = spawns(&actions);
    assert_eq!(spawned.len(), 5, "{actions:?}");
    for (i, (machine_type, hold)) in spawned.iter().enumerate() {
        // 100 viewers at 0.85 of 150 per vCPU: one vCPU holds 127.
        assert_eq!(machine_type, "n1-standard-1");
        assert_eq!(hold.as_deref(), Some(format!("live{i}").as_str()));
    }
    assert!(
        actions
            .iter()
            .all(|a| a.reason().contains("node of its own"))
    );
}

#[test]
fn nothing_is_launched_twice_while_instances_are_in_flight() {
    let mut snap = empty();
    snap.pending
        .push(pending("live0", SessionClass::Livestream, 100));
    snap.pending.push(pending("m1", SessionClass::Meeting, 10));
    let mut held = instance("i-held", "n1-standard-1", InstanceState::Booting, 980);
    held.hold_for = Some("live0".to_owned());
    snap.instances.push(held);
    snap.instances.push(instance(
        "i-shared",
        "n2-highcpu-4",
        InstanceState::Creating,
        985,
    ));
    let detailed = plan_detailed(&snap, &Policy::default());
    assert!(detailed.actions.is_empty(), "{:?}", detailed.actions);
    assert_eq!(
        detailed.covers["live0"],
        Cover::HeldInstance("i-held".to_owned())
    );
    assert_eq!(
        detailed.covers["m1"],
        Cover::Instance("i-shared".to_owned())
    );
}

#[test]
fn small_demands_are_packed_first_fit_decreasing() {
    let mut snap = empty();
    // n2-highcpu-2: 300 units, 240 under meeting headroom.
    for (sid, size) in [("a", 20), ("b", 20), ("c", 10), ("d", 5)] {
        snap.pending.push(pending(sid, SessionClass::Meeting, size));
    }
    let policy = Policy {
        pack_machine_type: "n2-highcpu-2".to_owned(),
        ..Policy::default()
    };
    let detailed = plan_detailed(&snap, &policy);
    // 180, 180, 90, 20 units into bins of 240: [a, d], [b], [c].
    assert_eq!(spawns(&detailed.actions).len(), 3, "{:?}", detailed.actions);
    assert_eq!(detailed.covers["a"], detailed.covers["d"]);
    assert_ne!(detailed.covers["a"], detailed.covers["b"]);
    assert!(spawns(&detailed.actions).iter().all(|(_, h)| h.is_none()));
}

#[test]
fn a_small_demand_that_fits_an_existing_node_spawns_nothing() {
    let mut snap = empty();
    snap.nodes.push(node("a", "n2-highcpu-4"));
    snap.pending.push(pending("m", SessionClass::Meeting, 10));
    let detailed = plan_detailed(&snap, &Policy::default());
    assert!(detailed.actions.is_empty());
    assert_eq!(detailed.covers["m"], Cover::Node("a".to_owned()));
}

#[test]
fn max_nodes_is_respected() {
    let mut snap = empty();
    snap.nodes.push(node("a", "n2-highcpu-4"));
    for i in 0..5 {
        snap.pending
            .push(pending(&format!("l{i}"), SessionClass::Livestream, 50));
    }
    let policy = Policy {
        max_nodes: 3,
        ..Policy::default()
    };
    let detailed = plan_detailed(&snap, &policy);
    assert_eq!(spawns(&detailed.actions).len(), 2);
    assert_eq!(
        detailed
            .covers
            .values()
            .filter(|c| **c == Cover::AtMax)
            .count(),
        3
    );
}

#[test]
fn warm_pool_is_kept_and_counts_booting_instances() {
    let mut snap = empty();
    let policy = Policy {
        warm_pool: BTreeMap::from([("n1-standard-1".to_owned(), 2)]),
        ..Policy::default()
    };
    assert_eq!(spawns(&plan(&snap, &policy)).len(), 2);
    snap.nodes.push(node("w1", "n1-standard-1"));
    snap.instances
        .push(instance("w2", "n1-standard-1", InstanceState::Booting, 999));
    assert!(plan(&snap, &policy).is_empty());
    // w1 takes a session: it is no longer warm.
    snap.sessions.push(session("s", "w1", 20));
    let actions = plan(&snap, &policy);
    assert_eq!(spawns(&actions).len(), 1);
    assert!(actions[0].reason().contains("warm pool"), "{actions:?}");
}

#[test]
fn idle_nodes_are_drained_beyond_min_and_warm_then_deleted_when_empty() {
    let mut snap = empty();
    for id in ["a", "b", "c", "busy"] {
        snap.nodes.push(node(id, "n1-standard-1"));
        snap.instances
            .push(instance(id, "n1-standard-1", InstanceState::Ready, 0));
        snap.idle_since.insert(id.to_owned(), at(0));
    }
    snap.sessions.push(session("s", "busy", 20));
    let policy = Policy {
        min_nodes: 1,
        warm_pool: BTreeMap::from([("n1-standard-1".to_owned(), 1)]),
        idle_timeout: Duration::from_secs(60),
        ..Policy::default()
    };
    let actions = plan(&snap, &policy);
    let drained: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Drain { node, .. } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    // Three idle, one kept warm: two drained; busy never.
    assert_eq!(drained, vec!["a", "b"], "{actions:?}");
    // Not yet past the timeout: nothing.
    let mut young = snap.clone();
    young.idle_since.values_mut().for_each(|t| *t = at(990));
    assert!(plan(&young, &policy).is_empty());
    // Once drained and empty: deleted. A drained busy node is not.
    for id in ["a", "busy"] {
        snap.drains.insert(
            id.to_owned(),
            DrainRequest {
                requested_at: at(999),
                deadline: None,
                reason: Some(format!("{DRAIN_REASON_PREFIX} idle")),
            },
        );
    }
    let actions = plan(&snap, &policy);
    assert!(actions.contains(&Action::Delete {
        instance: "a".to_owned(),
        reason: "drained by the autoscaler and empty".to_owned()
    }));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Delete { instance, .. } if instance == "busy"))
    );
}

#[test]
fn an_instance_that_never_registers_is_deleted_and_replaced() {
    let mut snap = empty();
    snap.pending
        .push(pending("live0", SessionClass::Livestream, 10));
    let mut stuck = instance("stuck", "n1-standard-1", InstanceState::Booting, 0);
    stuck.hold_for = Some("live0".to_owned());
    snap.instances.push(stuck);
    let policy = Policy {
        boot_timeout: Duration::from_secs(120),
        ..Policy::default()
    };
    let actions = plan(&snap, &policy);
    assert!(
        matches!(&actions[0], Action::Delete { instance, reason } if instance == "stuck" && reason.contains("boot_timeout"))
    );
    assert_eq!(
        spawns(&actions),
        vec![("n1-standard-1".to_owned(), Some("live0".to_owned()))]
    );
}

// Properties, over random clusters.

fn arb_type() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "n1-standard-1",
        "n2-highcpu-2",
        "n2-highcpu-4",
        "n2-highcpu-8",
    ])
}

fn arb_class() -> impl Strategy<Value = (SessionClass, u32)> {
    prop_oneof![
        (2u32..=6).prop_map(|n| (SessionClass::Group, n)),
        (2u32..=50).prop_map(|n| (SessionClass::Meeting, n)),
        (2u32..=300).prop_map(|n| (SessionClass::Conference, n)),
        (1u32..=3000).prop_map(|n| (SessionClass::Livestream, n)),
        (1u32..=200).prop_map(|n| (SessionClass::Recording, n)),
    ]
}

prop_compose! {
    fn arb_snapshot()(
        nodes in prop::collection::vec((arb_type(), 0u32..3, any::<bool>(), 0u64..2000, any::<bool>()), 0..8),
        flights in prop::collection::vec((arb_type(), 0u64..1000, any::<bool>()), 0..4),
        pend in prop::collection::vec(arb_class(), 0..10),
    ) -> Snapshot {
        let mut snap = empty();
        snap.now = at(2000);
        for (i, (t, sessions, managed, idle, drained)) in nodes.into_iter().enumerate() {
            let id = format!("n{i}");
            let mut record = node(&id, t);
            record.updated_at = at(1999);
            if sessions > 0 {
                record.stats.sessions = sessions;
                snap.sessions.push(session(&format!("s{i}"), &id, 10 * sessions));
            }
            if managed {
                snap.instances.push(instance(&id, t, InstanceState::Ready, 0));
            }
            snap.idle_since.insert(id.clone(), at(idle));
            if drained {
                snap.drains.insert(id.clone(), DrainRequest {
                    requested_at: at(1000),
                    deadline: None,
                    reason: Some(format!("{DRAIN_REASON_PREFIX} idle")),
                });
            }
            snap.nodes.push(record);
        }
        for (i, (t, created, held)) in flights.into_iter().enumerate() {
            let mut record = instance(&format!("f{i}"), t, InstanceState::Booting, created);
            if held {
                record.hold_for = Some(format!("p{i}"));
            }
            snap.instances.push(record);
        }
        for (i, (class, size)) in pend.into_iter().enumerate() {
            snap.pending.push(pending(&format!("p{i}"), class, size));
        }
        snap
    }
}

prop_compose! {
    fn arb_policy()(
        min in 0u32..4,
        extra in 0u32..20,
        warm in prop::option::of((arb_type(), 0u32..3)),
        idle in 0u64..1500,
        boot in 100u64..2000,
    ) -> Policy {
        Policy {
            min_nodes: min,
            max_nodes: min + extra,
            warm_pool: warm.map(|(t, n)| (t.to_owned(), n)).into_iter().collect(),
            idle_timeout: Duration::from_secs(idle),
            boot_timeout: Duration::from_secs(boot),
            ..Policy::default()
        }
    }
}

/// Nodes plus instances in flight before the plan, and the spawns it adds.
fn fleet(snap: &Snapshot, policy: &Policy, actions: &[Action]) -> (usize, usize) {
    let in_flight = snap
        .instances
        .iter()
        .filter(|i| {
            !snap.nodes.iter().any(|n| n.id == i.name)
                && snap.now.duration_since(i.created_at).unwrap_or_default() <= policy.boot_timeout
        })
        .count();
    (snap.nodes.len() + in_flight, spawns(actions).len())
}

proptest! {
    #[test]
    fn never_exceeds_max(snap in arb_snapshot(), policy in arb_policy()) {
        let actions = plan(&snap, &policy);
        let (standing, spawned) = fleet(&snap, &policy, &actions);
        if spawned > 0 {
            prop_assert!(standing + spawned <= policy.max_nodes as usize,
                "{} standing + {} spawned > max {}: {:?}", standing, spawned, policy.max_nodes, actions);
        }
    }

    #[test]
    fn never_deletes_a_non_empty_node(snap in arb_snapshot(), policy in arb_policy()) {
        for action in plan(&snap, &policy) {
            let target = match &action {
                Action::Delete { instance, .. } | Action::Drain { node: instance, .. } => instance,
                Action::Spawn { .. } => continue,
            };
            if let Some(node) = snap.nodes.iter().find(|n| &n.id == target) {
                prop_assert_eq!(node.stats.sessions, 0, "{}", action);
                prop_assert!(!snap.sessions.iter().any(|s| &s.node == target), "{}", action);
            }
        }
    }

    #[test]
    fn every_pending_demand_is_covered(snap in arb_snapshot(), policy in arb_policy()) {
        // With room to grow, every demand is covered by an existing fit or a spawn.
        let policy = Policy { max_nodes: 1000, ..policy };
        let detailed = plan_detailed(&snap, &policy);
        for demand in &snap.pending {
            let cover = detailed.covers.get(&demand.sid);
            prop_assert!(cover.is_some(), "{} has no cover", demand.sid);
            let spec = ClassSpec::of(demand.class);
            match cover.expect("checked above") {
                Cover::Spawn(index) => {
                    let Action::Spawn { machine_type, hold_for, .. } = &detailed.actions[*index] else {
                        panic!("cover {index} is not a spawn");
                    };
                    let capacity = MachineType::by_name(machine_type).expect("a catalogue type")
                        .capacity(policy.units_per_vcpu);
                    prop_assert!(demand.demand <= spec.limit(capacity));
                    if spec.dedicated {
                        prop_assert_eq!(hold_for.as_deref(), Some(demand.sid.as_str()));
                    }
                }
                Cover::Node(id) => {
                    let node = snap.nodes.iter().find(|n| &n.id == id).expect("a known node");
                    prop_assert!(!spec.dedicated);
                    prop_assert!(demand.demand <= spec.limit(node.capacity));
                    prop_assert!(!snap.drains.contains_key(id));
                }
                Cover::HeldNode(_) | Cover::HeldInstance(_) | Cover::Placed | Cover::Instance(_) => {}
                Cover::TooLarge => {
                    prop_assert!(crate::capacity::smallest_fitting(demand.demand, policy.units_per_vcpu, &spec).is_none());
                }
                Cover::AtMax => prop_assert!(false, "max 1000 reached"),
            }
        }
        // Packing never overfills a new instance.
        let mut load: BTreeMap<usize, Units> = BTreeMap::new();
        for demand in &snap.pending {
            if let Some(Cover::Spawn(i)) = detailed.covers.get(&demand.sid) {
                *load.entry(*i).or_default() += demand.demand;
            }
        }
        for (i, units) in load {
            let Action::Spawn { machine_type, .. } = &detailed.actions[i] else { unreachable!() };
            let capacity = MachineType::by_name(machine_type).expect("a catalogue type").capacity(policy.units_per_vcpu);
            prop_assert!(units <= capacity);
        }
    }
}

#[test]
fn an_unfinished_delete_is_retried() {
    let mut snap = empty();
    snap.instances.push(instance(
        "gone",
        "n1-standard-1",
        InstanceState::Deleting,
        0,
    ));
    let actions = plan(&snap, &Policy::default());
    assert!(
        matches!(&actions[..], [Action::Delete { instance, .. }] if instance == "gone"),
        "{actions:?}"
    );
    // Deleting by `ionctl delete` while its node drains with sessions: left alone.
    snap.nodes.push(node("gone", "n1-standard-1"));
    snap.sessions.push(session("s", "gone", 10));
    assert!(plan(&snap, &Policy::default()).is_empty());
}
