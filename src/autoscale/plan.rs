//! The pure planner: [`plan`] turns a snapshot of the cluster (nodes, sessions, drains, pending
//! demands, recorded instances, how long each node has been idle and when the last spawns
//! were) and a [`Policy`] into the actions the loop should take. No I/O, no clock: `now` comes
//! in with the snapshot, and idleness and recent spawns are tracked by the loop.
//!
//! It cannot run away: every instance it spawns for pending demands is bound to them, and no
//! second instance is spawned for a demand while the first boots or for `spawn_grace` after it
//! registered (the plan says why the demand still waits instead); spawns are capped per
//! minute; and no node younger than `min_lifetime` is drained.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::capacity::{
    ClassSpec, DEFAULT_UNITS_PER_VCPU, LoadRules, MachineType, Sessions, believed_observed,
    condition, largest, smallest_fitting, span_nodes,
};
use crate::model::{
    DrainRequest, InstanceRecord, InstanceState, NodeRecord, NodeState, PendingDemand, Units,
};

/// Drain requests written by the autoscaler carry a reason starting with this; only such
/// drains are finished with a delete, so an operator's maintenance drain is left alone.
pub const DRAIN_REASON_PREFIX: &str = "autoscale:";

/// What the planner sees.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: SystemTime,
    pub nodes: Vec<NodeRecord>,
    /// Indexed by id and summed per node, as placement reads them.
    pub sessions: Sessions,
    pub drains: BTreeMap<String, DrainRequest>,
    pub pending: Vec<PendingDemand>,
    pub instances: Vec<InstanceRecord>,
    /// Since when each node has been idle (no sessions, nothing committed), as the loop saw it.
    /// A node missing here is not idle.
    pub idle_since: BTreeMap<String, SystemTime>,
    /// When the spawns of the last minute were asked for, whether they succeeded or not.
    pub recent_spawns: Vec<SystemTime>,
}

/// The window of [`Policy::max_spawns_per_minute`].
pub const SPAWN_WINDOW: Duration = Duration::from_secs(60);

/// The autoscaler's knobs (`[autoscale]` in the config, or flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub min_nodes: u32,
    pub max_nodes: u32,
    /// Machine type → number of ready, idle nodes kept for bursts.
    pub warm_pool: BTreeMap<String, u32>,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub boot_timeout: Duration,
    /// Type of the new shared instances small demands are packed onto (and of min_nodes).
    pub pack_machine_type: String,
    pub units_per_vcpu: Units,
    /// After an instance spawned for a demand registers, this long before another instance
    /// may be spawned for the same demand: its placer needs a moment to take it.
    #[serde(with = "humantime_serde")]
    pub spawn_grace: Duration,
    /// At most this many spawns in any minute, whatever the demand.
    pub max_spawns_per_minute: u32,
    /// No node is drained before it has run this long (GCE bills at least a minute, and a
    /// node drained right after it booted is churn).
    #[serde(with = "humantime_serde")]
    pub min_lifetime: Duration,
    /// How observed load and host health are read: placement's rules (`[placement]`).
    #[serde(skip)]
    pub load: LoadRules,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_nodes: 0,
            max_nodes: 10,
            warm_pool: BTreeMap::new(),
            idle_timeout: Duration::from_secs(300),
            boot_timeout: Duration::from_secs(600),
            pack_machine_type: "n2-highcpu-4".to_owned(),
            units_per_vcpu: DEFAULT_UNITS_PER_VCPU,
            spawn_grace: Duration::from_secs(60),
            max_spawns_per_minute: 10,
            min_lifetime: Duration::from_secs(120),
            load: LoadRules::default(),
        }
    }
}

impl Policy {
    /// Capacity in units of a catalogue type (0 for an unknown one).
    fn capacity(&self, machine_type: &str) -> Units {
        MachineType::by_name(machine_type).map_or(0, |m| m.capacity(self.units_per_vcpu))
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A new instance; held for `hold_for` and bound to the pending demands `for_demands`.
    Spawn {
        machine_type: String,
        hold_for: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        for_demands: Vec<String>,
        reason: String,
    },
    Drain {
        node: String,
        reason: String,
    },
    Delete {
        instance: String,
        reason: String,
    },
}

impl Action {
    pub fn reason(&self) -> &str {
        match self {
            Action::Spawn { reason, .. }
            | Action::Drain { reason, .. }
            | Action::Delete { reason, .. } => reason,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Spawn {
                machine_type,
                hold_for,
                for_demands,
                reason,
            } => {
                write!(f, "spawn {machine_type}")?;
                if let Some(sid) = hold_for {
                    write!(f, " held for {sid}")?;
                }
                let others: Vec<&str> = for_demands
                    .iter()
                    .map(String::as_str)
                    .filter(|d| Some(*d) != hold_for.as_deref())
                    .collect();
                if !others.is_empty() {
                    write!(f, " (also for {})", others.join(", "))?;
                }
                write!(f, ": {reason}")
            }
            Action::Drain { node, reason } => write!(f, "drain {node}: {reason}"),
            Action::Delete { instance, reason } => write!(f, "delete {instance}: {reason}"),
        }
    }
}

/// How a pending demand is covered by the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cover {
    /// Already placed: a session record exists.
    Placed,
    /// An instance in flight spawned for it.
    HeldInstance(String),
    /// Its own node has registered and not taken it yet, for the reason `why`: `node` is held
    /// for it, or was spawned for it less than `spawn_grace` ago. No other instance is
    /// spawned for it meanwhile.
    BoundNode { node: String, why: String },
    /// Fits on an existing ready node with room.
    Node(String),
    /// Packed onto an unheld instance in flight.
    Instance(String),
    /// The `n`th action of the plan, a spawn.
    Spawn(usize),
    /// Not covered: `max_nodes` reached.
    AtMax,
    /// Not covered this tick: `max_spawns_per_minute` reached.
    RateLimited,
    /// No machine type in the catalogue holds it; placement refuses it.
    TooLarge,
}

/// The actions, and how each pending demand is covered (for tests and logs).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub covers: BTreeMap<String, Cover>,
}

/// The actions for `snapshot` under `policy`.
pub fn plan(snapshot: &Snapshot, policy: &Policy) -> Vec<Action> {
    plan_detailed(snapshot, policy).actions
}

/// A bin demands are packed into: its room left under the class's headroom is computed per
/// demand from capacity and what is already in it.
struct Bin<'a> {
    kind: BinKind<'a>,
    capacity: Units,
    used: f64,
}

enum BinKind<'a> {
    Node(&'a str),
    Instance(&'a str),
    Spawn(usize),
}

impl Bin<'_> {
    fn takes(&self, demand: Units, spec: &ClassSpec) -> bool {
        self.used + f64::from(demand) <= f64::from(spec.limit(self.capacity))
    }
}

/// The node's own figures first: the sums are looked up only for nodes that report nothing.
fn is_idle(node: &NodeRecord, sessions: &Sessions) -> bool {
    node.stats.sessions == 0 && node.stats.peers == 0 && sessions.on_node(&node.id).committed() == 0
}

/// Why a registered node bound to `demand` has not taken it: the first placement rule it
/// fails, or that it could take it and a placer has yet to ask.
fn why_waiting(
    node: &NodeRecord,
    demand: &PendingDemand,
    snapshot: &Snapshot,
    committed: Units,
    policy: &Policy,
) -> String {
    let spec = ClassSpec::of(demand.class);
    if node.state != NodeState::Ready || snapshot.drains.contains_key(&node.id) {
        return format!("{} is draining", node.id);
    }
    if let Some(held) = node.hold_for.as_deref()
        && held != demand.sid
        && !snapshot
            .sessions
            .get(held)
            .is_some_and(|s| s.is_on(&node.id))
    {
        return format!("{} is held for {held}", node.id);
    }
    let health = condition(node, snapshot.now, &policy.load);
    if health.refuses() {
        return format!("{}: {health}", node.id);
    }
    if spec.dedicated && (committed > 0 || node.stats.sessions > 0) {
        return format!(
            "{} carries other sessions; a {} needs a node of its own",
            node.id, demand.class
        );
    }
    let used = f64::from(committed).max(believed_observed(
        node,
        committed,
        snapshot.now,
        &policy.load,
    ));
    let limit = f64::from(spec.limit(node.capacity));
    if used + f64::from(demand.demand) > limit {
        return format!(
            "{} has {:.0} of {limit:.0} usable units left, {} needs {}",
            node.id,
            (limit - used).max(0.0),
            demand.sid,
            demand.demand
        );
    }
    format!(
        "{} can take {}; waiting for its placer to decide again (`ionctl place --session {} \
         --wait`)",
        node.id, demand.sid, demand.sid
    )
}

/// [`plan`], with the cover of every pending demand.
pub fn plan_detailed(snapshot: &Snapshot, policy: &Policy) -> Plan {
    let mut out = Plan::default();
    let now = snapshot.now;
    // The lookups below are by id and never iterated: hashed, because ordered string keys
    // cost a comparison of ids per tree level on every tick (docs/benchmarks.md, "Simulation").
    // FxHash: the keys are node and instance ids, and SipHash was most of a tick.
    let mut nodes_by_id: FxHashMap<&str, &NodeRecord> = FxHashMap::default();
    for node in &snapshot.nodes {
        nodes_by_id.entry(node.id.as_str()).or_insert(node);
    }
    // Per node, what every session on it reserved there (a session that spans nodes has its
    // edges' share on each edge, as placement counts it), kept by the sessions' index.
    let committed = |id: &str| snapshot.sessions.on_node(id).committed();
    let placed = |sid: &str| snapshot.sessions.contains(sid);
    let managed: FxHashMap<&str, &InstanceRecord> = snapshot
        .instances
        .iter()
        .map(|i| (i.name.as_str(), i))
        .collect();
    let age_of = |node: &NodeRecord| {
        let born = managed
            .get(node.id.as_str())
            .map_or(node.started_at, |i| i.created_at.min(node.started_at));
        now.duration_since(born).unwrap_or_default()
    };

    // Instances in flight: recorded, not deleting, without a registered node. Those past
    // boot_timeout are deleted and no longer count; what they were for is planned again.
    let mut in_flight: Vec<&InstanceRecord> = Vec::new();
    for instance in &snapshot.instances {
        let registered = nodes_by_id.contains_key(instance.name.as_str());
        if instance.state == InstanceState::Deleting && !registered {
            // A delete that failed or was cut short: try again, so nothing stays stuck in
            // deleting (providers' deletes are idempotent).
            out.actions.push(Action::Delete {
                instance: instance.name.clone(),
                reason: "finishing an unfinished delete; its node is gone".to_owned(),
            });
            continue;
        }
        if instance.state == InstanceState::Deleting || registered {
            continue;
        }
        let age = now.duration_since(instance.created_at).unwrap_or_default();
        if age > policy.boot_timeout {
            out.actions.push(Action::Delete {
                instance: instance.name.clone(),
                reason: format!(
                    "never registered within boot_timeout {}",
                    humantime::format_duration(policy.boot_timeout)
                ),
            });
        } else if instance.in_flight() {
            in_flight.push(instance);
        }
    }
    let mut count = u32::try_from(snapshot.nodes.len() + in_flight.len()).unwrap_or(u32::MAX);
    let mut room = policy.max_nodes.saturating_sub(count);
    let spawned_lately = snapshot
        .recent_spawns
        .iter()
        .filter(|t| now.duration_since(**t).unwrap_or_default() < SPAWN_WINDOW)
        .count();
    let mut budget = policy
        .max_spawns_per_minute
        .saturating_sub(u32::try_from(spawned_lately).unwrap_or(u32::MAX));
    // A spawn takes a slot under max_nodes and one under the per-minute cap; the instances
    // of one split livestream are taken together or not at all.
    let mut take_slots = |covers: &mut BTreeMap<String, Cover>, sid: &str, n: u32| -> bool {
        if room < n {
            covers.insert(sid.to_owned(), Cover::AtMax);
            return false;
        }
        if budget < n {
            covers.insert(sid.to_owned(), Cover::RateLimited);
            return false;
        }
        room -= n;
        budget -= n;
        count += n;
        true
    };

    // Registered nodes of instances spawned for demands that still wait, within the grace
    // period: they are the demands' nodes, not idle capacity.
    let pending_sids: FxHashSet<&str> = snapshot.pending.iter().map(|p| p.sid.as_str()).collect();
    let bound_nodes: FxHashSet<&str> = snapshot
        .instances
        .iter()
        .filter(|i| {
            let bound = i.hold_for.iter().chain(&i.demands);
            bound
                .into_iter()
                .any(|sid| pending_sids.contains(sid.as_str()) && !placed(sid))
        })
        .filter(|i| nodes_by_id.contains_key(i.name.as_str()))
        .map(|i| i.name.as_str())
        .collect();

    // Scale up. Oldest demands first, so the ones waiting longest win under max.
    let mut pending: Vec<&PendingDemand> = snapshot.pending.iter().collect();
    pending.sort_by(|a, b| a.since.cmp(&b.since).then(a.sid.cmp(&b.sid)));
    // Hashed once per tick: a lookup in the ordered map per node compares ids per level.
    let drained: FxHashSet<&str> = snapshot.drains.keys().map(String::as_str).collect();
    let usable = |n: &NodeRecord| {
        n.state == NodeState::Ready
            && n.capacity > 0
            && (drained.is_empty() || !drained.contains(n.id.as_str()))
    };
    let max_node_capacity = if snapshot.pending.is_empty() {
        0
    } else {
        snapshot
            .nodes
            .iter()
            .filter(|n| usable(n))
            .map(|n| n.capacity)
            .max()
            .unwrap_or(0)
    };
    // Looked up per pending demand, so built once a tick rather than searched per demand:
    // thousands of demands wait when max_nodes binds. The first node held for a session, and
    // the instances bound to each session, in snapshot order.
    let mut held_nodes: FxHashMap<&str, &NodeRecord> = FxHashMap::default();
    let mut instances_for: FxHashMap<&str, Vec<&InstanceRecord>> = FxHashMap::default();
    if !pending.is_empty() {
        for node in &snapshot.nodes {
            if let Some(sid) = node.hold_for.as_deref() {
                held_nodes.entry(sid).or_insert(node);
            }
        }
        for instance in &snapshot.instances {
            let bound = instance.hold_for.iter().chain(&instance.demands);
            for (k, sid) in bound.enumerate() {
                let seen_before = instance
                    .hold_for
                    .iter()
                    .chain(&instance.demands)
                    .take(k)
                    .any(|earlier| earlier == sid);
                if !seen_before {
                    instances_for.entry(sid).or_default().push(instance);
                }
            }
        }
    }
    let mut small: Vec<&PendingDemand> = Vec::new();
    for demand in pending {
        let spec = ClassSpec::of(demand.class);
        // A placed session that may span nodes and still has a pending demand asked for one
        // more edge (its nodes are full and no node is free): that gets a node held for it.
        // The commit that places a session deletes its pending demand.
        let edge_wanted = spec.spans;
        if placed(&demand.sid) && !edge_wanted {
            out.covers.insert(demand.sid.clone(), Cover::Placed);
            continue;
        }
        if let Some(instance) = in_flight.iter().find(|i| i.is_for(&demand.sid)) {
            out.covers.insert(
                demand.sid.clone(),
                Cover::HeldInstance(instance.name.clone()),
            );
            continue;
        }
        let held = held_nodes.get(demand.sid.as_str()).copied();
        let bound = held.or_else(|| {
            instances_for
                .get(demand.sid.as_str())
                .into_iter()
                .flatten()
                .find_map(|i| {
                    let node = *nodes_by_id.get(i.name.as_str())?;
                    let registered = i.registered_at.unwrap_or(node.started_at);
                    let since = now.duration_since(registered).unwrap_or_default();
                    (since < policy.spawn_grace).then_some(node)
                })
        });
        if let Some(node) = bound {
            let why = why_waiting(node, demand, snapshot, committed(&node.id), policy);
            out.covers.insert(
                demand.sid.clone(),
                Cover::BoundNode {
                    node: node.id.clone(),
                    why,
                },
            );
            continue;
        }
        // Too big for any node and for the shared pack type: it gets an instance of its own.
        let largest_bin = max_node_capacity.max(policy.capacity(&policy.pack_machine_type));
        let too_big = demand.demand > spec.limit(largest_bin);
        if !(spec.dedicated || too_big) {
            small.push(demand);
            continue;
        }
        let machine = demand
            .machine_type
            .as_deref()
            .and_then(MachineType::by_name)
            .filter(|m| demand.demand <= spec.limit(m.capacity(policy.units_per_vcpu)))
            .or_else(|| smallest_fitting(demand.demand, policy.units_per_vcpu, &spec));
        let Some(machine) = machine else {
            // A livestream or conference no machine holds spans several of the largest type,
            // each held for it and started together, so placement can split it over them.
            let biggest = largest();
            let room = spec.limit(biggest.capacity(policy.units_per_vcpu));
            let span =
                span_nodes(demand.class, demand.size, demand.demand, room).filter(|_| spec.spans);
            let Some(span) = span else {
                out.covers.insert(demand.sid.clone(), Cover::TooLarge);
                continue;
            };
            if !take_slots(&mut out.covers, &demand.sid, span) {
                continue;
            }
            out.covers
                .insert(demand.sid.clone(), Cover::Spawn(out.actions.len()));
            for part in 1..=span {
                out.actions.push(Action::Spawn {
                    machine_type: biggest.name.to_owned(),
                    hold_for: Some(demand.sid.clone()),
                    for_demands: vec![demand.sid.clone()],
                    reason: format!(
                        "pending livestream {} ({} units) spans {span} nodes: {part} of {span}",
                        demand.sid, demand.demand
                    ),
                });
            }
            continue;
        };
        if !take_slots(&mut out.covers, &demand.sid, 1) {
            continue;
        }
        out.covers
            .insert(demand.sid.clone(), Cover::Spawn(out.actions.len()));
        out.actions.push(Action::Spawn {
            machine_type: machine.name.to_owned(),
            hold_for: Some(demand.sid.clone()),
            for_demands: vec![demand.sid.clone()],
            reason: format!(
                "pending {} {} ({} units) {}",
                demand.class,
                demand.sid,
                demand.demand,
                if spec.dedicated {
                    "needs a node of its own"
                } else {
                    "fits no existing node"
                }
            ),
        });
    }

    // Small demands, first-fit decreasing: existing ready nodes with room, then unheld
    // instances in flight, then new instances of the pack type. A new instance is held for
    // the largest demand packed onto it and bound to all of them; the hold ends for placement
    // once that session is reserved there, so the rest follow.
    small.sort_by(|a, b| b.demand.cmp(&a.demand).then(a.sid.cmp(&b.sid)));
    let mut bins: Vec<Bin> = Vec::new();
    // Bins only when there is something to pack into them.
    let nodes_to_pack = if small.is_empty() {
        &[][..]
    } else {
        &snapshot.nodes[..]
    };
    for node in nodes_to_pack {
        let on_node = snapshot.sessions.on_node(&node.id);
        if usable(node)
            && node.hold_for.is_none()
            && !on_node.carries_dedicated()
            && !condition(node, now, &policy.load).refuses()
        {
            let c = on_node.committed();
            let observed = believed_observed(node, c, now, &policy.load);
            bins.push(Bin {
                kind: BinKind::Node(&node.id),
                capacity: node.capacity,
                used: f64::from(c).max(observed),
            });
        }
    }
    for instance in in_flight.iter().filter(|i| i.hold_for.is_none()) {
        bins.push(Bin {
            kind: BinKind::Instance(&instance.name),
            capacity: policy.capacity(&instance.machine_type),
            used: 0.0,
        });
    }
    let mut packed_instances: FxHashSet<&str> = FxHashSet::default();
    let mut packed_nodes: FxHashSet<&str> = FxHashSet::default();
    for demand in small {
        let spec = ClassSpec::of(demand.class);
        let bin = match bins.iter_mut().find(|b| b.takes(demand.demand, &spec)) {
            Some(bin) => bin,
            None => {
                let pack = MachineType::by_name(&policy.pack_machine_type)
                    .filter(|m| demand.demand <= spec.limit(m.capacity(policy.units_per_vcpu)))
                    .or_else(|| smallest_fitting(demand.demand, policy.units_per_vcpu, &spec));
                let Some(machine) = pack else {
                    out.covers.insert(demand.sid.clone(), Cover::TooLarge);
                    continue;
                };
                if !take_slots(&mut out.covers, &demand.sid, 1) {
                    continue;
                }
                let index = out.actions.len();
                out.actions.push(Action::Spawn {
                    machine_type: machine.name.to_owned(),
                    hold_for: Some(demand.sid.clone()),
                    for_demands: Vec::new(),
                    reason: format!(
                        "pending {} {} ({} units) fits no node",
                        demand.class, demand.sid, demand.demand
                    ),
                });
                bins.push(Bin {
                    kind: BinKind::Spawn(index),
                    capacity: machine.capacity(policy.units_per_vcpu),
                    used: 0.0,
                });
                bins.last_mut().expect("a bin was just pushed")
            }
        };
        bin.used += f64::from(demand.demand);
        let cover = match &bin.kind {
            BinKind::Node(id) => {
                packed_nodes.insert(id);
                Cover::Node((*id).to_owned())
            }
            BinKind::Instance(name) => {
                packed_instances.insert(name);
                Cover::Instance((*name).to_owned())
            }
            BinKind::Spawn(index) => {
                if let Some(Action::Spawn { for_demands, .. }) = out.actions.get_mut(*index) {
                    for_demands.push(demand.sid.clone());
                }
                Cover::Spawn(*index)
            }
        };
        out.covers.insert(demand.sid.clone(), cover);
    }

    // Idle nodes: ready, not drained, not held, carrying nothing, and not about to take a
    // pending demand.
    let idle: Vec<&NodeRecord> = snapshot
        .nodes
        .iter()
        .filter(|n| {
            usable(n)
                && n.hold_for.is_none()
                && is_idle(n, &snapshot.sessions)
                && !packed_nodes.contains(n.id.as_str())
                && !bound_nodes.contains(n.id.as_str())
        })
        .collect();

    // Minimum and warm pool.
    for (machine_type, want) in &policy.warm_pool {
        let warm_nodes = idle
            .iter()
            .filter(|n| &n.machine_type == machine_type)
            .count();
        let warm_booting = in_flight
            .iter()
            .filter(|i| {
                i.hold_for.is_none()
                    && &i.machine_type == machine_type
                    && !packed_instances.contains(i.name.as_str())
            })
            .count();
        let have = u32::try_from(warm_nodes + warm_booting).unwrap_or(u32::MAX);
        for _ in have..*want {
            if room == 0 || budget == 0 {
                break;
            }
            room -= 1;
            budget -= 1;
            count += 1;
            out.actions.push(Action::Spawn {
                machine_type: machine_type.clone(),
                hold_for: None,
                for_demands: Vec::new(),
                reason: format!("warm pool {machine_type}: {have} idle of {want} wanted"),
            });
        }
    }
    while count < policy.min_nodes && room > 0 && budget > 0 {
        room -= 1;
        budget -= 1;
        count += 1;
        out.actions.push(Action::Spawn {
            machine_type: policy.pack_machine_type.clone(),
            hold_for: None,
            for_demands: Vec::new(),
            reason: format!("below min_nodes {}", policy.min_nodes),
        });
    }

    // Scale down: idle past idle_timeout, beyond min and the warm pool, older than
    // min_lifetime, and only instances this autoscaler can delete. Longest idle first.
    let mut expired: Vec<(&NodeRecord, SystemTime)> = idle
        .iter()
        .filter(|n| managed.contains_key(n.id.as_str()))
        .filter(|n| age_of(n) >= policy.min_lifetime)
        .filter_map(|n| {
            let since = *snapshot.idle_since.get(&n.id)?;
            let idle_for = now.duration_since(since).unwrap_or_default();
            (idle_for >= policy.idle_timeout).then_some((*n, since))
        })
        .collect();
    expired.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
    let mut idle_left: BTreeMap<&str, u32> = BTreeMap::new();
    for n in &idle {
        *idle_left.entry(n.machine_type.as_str()).or_default() += 1;
    }
    let mut nodes_left = count;
    for (node, since) in expired {
        let keep = policy
            .warm_pool
            .get(&node.machine_type)
            .copied()
            .unwrap_or(0);
        let left = idle_left.entry(node.machine_type.as_str()).or_default();
        if nodes_left <= policy.min_nodes || *left <= keep {
            continue;
        }
        *left -= 1;
        nodes_left -= 1;
        let idle_for = now.duration_since(since).unwrap_or_default();
        out.actions.push(Action::Drain {
            node: node.id.clone(),
            reason: format!(
                "{DRAIN_REASON_PREFIX} idle for {}s, past idle_timeout {}; up {}s",
                idle_for.as_secs(),
                humantime::format_duration(policy.idle_timeout),
                age_of(node).as_secs()
            ),
        });
    }

    // Drained by us and empty: delete.
    let drained_by_us: FxHashSet<&str> = snapshot
        .drains
        .iter()
        .filter(|(_, d)| {
            d.reason
                .as_deref()
                .is_some_and(|r| r.starts_with(DRAIN_REASON_PREFIX))
        })
        .map(|(id, _)| id.as_str())
        .collect();
    for node in &snapshot.nodes {
        let ours = !drained_by_us.is_empty() && drained_by_us.contains(node.id.as_str());
        // A delete of ours that failed leaves the record deleting: it is retried here too.
        if ours && is_idle(node, &snapshot.sessions) && managed.contains_key(node.id.as_str()) {
            out.actions.push(Action::Delete {
                instance: node.id.clone(),
                reason: "drained by the autoscaler and empty".to_owned(),
            });
        }
    }
    out
}
