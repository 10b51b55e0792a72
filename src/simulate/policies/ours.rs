//! Our policy: production's [`placement::decide`] for every request and production's
//! [`autoscale::plan`] on every autoscaler tick, on records shaped exactly like the ones
//! they read from etcd. Nothing of either is re-implemented here: this file only keeps the
//! records a real cluster would hold (nodes, sessions, pending demands, instances, drains,
//! idle times, recent spawns) and carries the decisions out on the simulated cluster.
//!
//! One shortcut keeps a day of 100,000 sessions fast: the sessions placed whole on a node
//! are handed to `decide` and `plan` as one record per node carrying their summed demand
//! (and a dedicated class when one of them is dedicated). Both read sessions only through
//! those sums, through session ids they look up (the request's, holds', pending demands':
//! none of them placed whole elsewhere) and through sessions spread over several nodes,
//! which are handed over as they are. A test checks that the decisions are the same.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use rustc_hash::FxHashMap;

use super::{Placement, Policy, Request};
use crate::autoscale::{self, Action, SPAWN_WINDOW};
use crate::capacity::{ClassSpec, MAX_SPAN_NODES, Sessions, split_shares};
use crate::model::{
    DrainRequest, InstanceRecord, InstanceState, NodeRecord, NodeState, PendingDemand,
    SessionClass, SessionRecord, SessionState, Units,
};
use crate::placement::{self, Decision, Role, Strategy};
use crate::simulate::clock::{Millis, SECOND, before_start, system_time};
use crate::simulate::cluster::{Cluster, MachineId};
use crate::simulate::trace::SessionSpec;

/// Production's knobs, as `ionctl place` and `ionctl autoscale` take them.
#[derive(Debug, Clone, PartialEq)]
pub struct OursConfig {
    pub placement: placement::Policy,
    pub autoscale: autoscale::Policy,
    pub strategy: Strategy,
    /// `ionctl autoscale --interval`.
    pub interval: Millis,
}

impl OursConfig {
    /// The defaults of `ionctl place` and `ionctl autoscale`, with the README's example warm
    /// pool of one n2-highcpu-4 and room for a day's fleet: the default `max_nodes` of 10
    /// is a safety cap for a first deployment, not a policy.
    pub fn production() -> Self {
        let placement = placement::Policy::default();
        let autoscale = autoscale::Policy {
            warm_pool: [("n2-highcpu-4".to_owned(), 1)].into_iter().collect(),
            max_nodes: 1_000,
            units_per_vcpu: placement.units_per_vcpu,
            load: placement.load_rules(),
            ..autoscale::Policy::default()
        };
        Self {
            placement,
            autoscale,
            strategy: Strategy::Binpack,
            interval: 2 * SECOND,
        }
    }
}

/// What a ready machine's records are between two rebuilds: its node record, its summed
/// record's id with the units and dedicated flag last put there, and whether it is idle.
type KeptRecords = (NodeRecord, (String, Units, bool), bool);

pub struct Ours {
    config: OursConfig,
    /// The cluster generation the node list was built at.
    seen: Option<u64>,
    nodes: Vec<NodeRecord>,
    node_machine: Vec<MachineId>,
    /// One record per node (its whole sessions, summed), then the split sessions.
    sessions: Sessions,
    /// Per node (as in `nodes`), the id of its summed record and the units and dedicated
    /// flag last put there: only records whose figures changed are put again.
    whole: Vec<(String, Units, bool)>,
    splits: BTreeMap<u32, SessionRecord>,
    instances: Vec<InstanceRecord>,
    pending: Vec<PendingDemand>,
    drains: BTreeMap<String, DrainRequest>,
    drain_set: BTreeSet<String>,
    idle_since: BTreeMap<String, SystemTime>,
    /// Per node (as in `nodes`), whether it is in `idle_since`.
    idle_flags: Vec<bool>,
    recent_spawns: BTreeMap<String, SystemTime>,
    /// Whether to skip `decide` where it can only say "wait" ([`Ours::cannot_fit_yet`]).
    pub(crate) shortcut: Shortcut,
    /// Per class, how often [`Shortcut::Verify`] found `decide` agreeing with the shortcut;
    /// and what `decide` answered where it did not.
    #[cfg(test)]
    pub(crate) verified: (BTreeMap<SessionClass, u32>, Vec<String>),
}

/// How [`Ours::cannot_fit_yet`] is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// Answer "wait" without asking `decide`.
    Take,
    /// Always ask `decide`.
    #[cfg(test)]
    Off,
    /// Answer "wait" where the shortcut says so, and ask `decide` as well to record whether
    /// it agrees: the test that shows the shortcut is sound.
    #[cfg(test)]
    Verify,
}

impl Ours {
    pub fn new(config: OursConfig) -> Self {
        Self {
            shortcut: Shortcut::Take,
            #[cfg(test)]
            verified: Default::default(),
            config,
            seen: None,
            nodes: Vec::new(),
            node_machine: Vec::new(),
            sessions: Sessions::new(),
            whole: Vec::new(),
            splits: BTreeMap::new(),
            instances: Vec::new(),
            pending: Vec::new(),
            drains: BTreeMap::new(),
            drain_set: BTreeSet::new(),
            idle_since: BTreeMap::new(),
            idle_flags: Vec::new(),
            recent_spawns: BTreeMap::new(),
        }
    }

    /// Brings the records up to date with the cluster at `now`.
    fn refresh(&mut self, cluster: &Cluster, now: Millis) {
        let at = system_time(now);
        if self.seen != Some(cluster.generation) {
            // Machines came, went, drained or changed holds. The records of machines still
            // ready are kept, and only the changed ones are put or removed: building every
            // record and the index again was most of a day's run.
            let mut kept: FxHashMap<MachineId, KeptRecords> = self
                .node_machine
                .drain(..)
                .zip(
                    self.nodes
                        .drain(..)
                        .zip(self.whole.drain(..))
                        .zip(self.idle_flags.drain(..)),
                )
                .map(|(id, ((node, whole), idle))| (id, (node, whole, idle)))
                .collect();
            for machine in cluster.live().filter(|m| m.is_ready()) {
                let (mut node, whole, idle) = match kept.remove(&machine.id) {
                    Some(record) => record,
                    None => {
                        let mut node = NodeRecord::blank(
                            &machine.name,
                            machine.machine_type,
                            machine.vcpus,
                            machine.capacity,
                            at,
                        );
                        node.zone = "sim".to_owned();
                        node.started_at = machine.started;
                        let sid = format!("~whole-sessions-on-{}", machine.name);
                        self.sessions.put(SessionRecord {
                            sid: sid.clone(),
                            class: SessionClass::Group,
                            size: 2,
                            demand: 0,
                            node: machine.name.clone(),
                            state: SessionState::Live,
                            relays: Vec::new(),
                            edge_demand: 0,
                            created_at: at,
                        });
                        let idle = self.idle_since.contains_key(&node.id);
                        (node, (sid, 0, false), idle)
                    }
                };
                node.hold_for.clone_from(&machine.hold_for);
                node.state = if machine.draining {
                    NodeState::Draining
                } else {
                    NodeState::Ready
                };
                self.nodes.push(node);
                self.node_machine.push(machine.id);
                self.whole.push(whole);
                self.idle_flags.push(idle);
            }
            // Machines gone: their summed records go with them.
            for (_, (_, (sid, _, _), _)) in kept {
                self.sessions.remove(&sid);
            }
            for instance in &mut self.instances {
                let machine = cluster
                    .by_name(&instance.name)
                    .map(|id| cluster.machine(id));
                if instance.in_flight()
                    && let Some(ready_at) = machine.and_then(|m| m.ready_at)
                {
                    instance.state = InstanceState::Ready;
                    instance.registered_at = Some(system_time(ready_at));
                }
            }
            self.seen = Some(cluster.generation);
        }
        for (index, node) in self.nodes.iter_mut().enumerate() {
            let machine = cluster.machine(self.node_machine[index]);
            let observed = machine.observed.max(0) as f64;
            node.updated_at = at;
            node.stats.sessions = u32::try_from(machine.sessions.len()).unwrap_or(u32::MAX);
            node.stats.peers = machine.participants;
            node.stats.observed_units = observed;
            node.stats.agent_cpu = observed / f64::from(machine.capacity.max(1));
            node.stats.cpu = node.stats.agent_cpu;
            let (sid, units, dedicated) = &mut self.whole[index];
            let now_dedicated = machine.dedicated_whole > 0;
            if (*units, *dedicated) != (machine.committed_whole, now_dedicated)
                && let Some(record) = self.sessions.get(sid)
            {
                let mut record = record.clone();
                record.demand = machine.committed_whole;
                record.class = if now_dedicated {
                    SessionClass::Recording
                } else {
                    SessionClass::Group
                };
                self.sessions.put(record);
                (*units, *dedicated) = (machine.committed_whole, now_dedicated);
            }
        }
    }

    fn placement_snapshot(&mut self, now: Millis) -> placement::Snapshot {
        placement::Snapshot {
            revision: 0,
            now: system_time(now),
            nodes: std::mem::take(&mut self.nodes),
            sessions: std::mem::take(&mut self.sessions),
            drains: std::mem::take(&mut self.drain_set),
            pending: std::mem::take(&mut self.pending),
            instances: std::mem::take(&mut self.instances),
        }
    }

    fn restore_placement(&mut self, snapshot: placement::Snapshot) {
        self.nodes = snapshot.nodes;
        self.sessions = snapshot.sessions;
        self.drain_set = snapshot.drains;
        self.pending = snapshot.pending;
        self.instances = snapshot.instances;
    }

    /// What `ionctl place` asks for a new session of `spec`.
    fn request_for(&self, spec: &SessionSpec) -> placement::Request {
        placement::Request {
            sid: spec.sid.clone(),
            class: spec.class,
            size: spec.size,
            strategy: self.config.strategy,
            role: Role::Publisher,
            uid: None,
        }
    }

    /// What production's `decide` answers for `request` at `now`.
    pub fn decide(&mut self, cluster: &Cluster, spec: &SessionSpec, now: Millis) -> Decision {
        self.refresh(cluster, now);
        let request = self.request_for(spec);
        let snapshot = self.placement_snapshot(now);
        let decision = placement::decide(&snapshot, &request, &self.config.placement);
        self.restore_placement(snapshot);
        decision
    }

    fn machine_named(cluster: &Cluster, name: &str) -> Option<MachineId> {
        cluster.by_name(name)
    }

    /// A session asked about again, whose pending demand is already written, that `decide`
    /// could only answer with "wait". Per placeable machine this takes the rules of
    /// `decide` that the cluster knows exactly (holds, dedicated classes, reservations and
    /// observed load where `decide` believes it) and an upper bound on its room. When no
    /// machine has room for the session, and (for a session that may span nodes) no split
    /// over the machines with the most room would hold it, `decide` cannot place it. This
    /// saves the bulk of a day's `decide` calls while callers queue for booting machines; a
    /// test shows it changes nothing.
    fn cannot_fit_yet(&self, cluster: &Cluster, request: &Request<'_>, now: Millis) -> bool {
        let spec = request.spec;
        let class = ClassSpec::of(spec.class);
        let Some(demand) = request.demand else {
            return false;
        };
        if !self.pending.iter().any(|p| p.sid == spec.sid) {
            return false;
        }
        let at = system_time(now);
        let warmup = self.config.placement.load_rules().warmup;
        // The largest rooms, largest first: as many as a split may use.
        let mut most_room: Vec<Units> = Vec::with_capacity(MAX_SPAN_NODES as usize + 1);
        for machine in cluster.placeable() {
            match machine.hold_for.as_deref() {
                Some(sid) if sid == spec.sid => return false,
                // The cluster releases a hold when its session is placed on the machine, so
                // a hold still there is for a session not served by it.
                Some(_) => continue,
                None => {}
            }
            let used = machine.committed > 0 || !machine.sessions.is_empty();
            let shares_badly = if class.dedicated {
                used
            } else {
                machine.dedicated > 0
            };
            if shares_badly {
                continue;
            }
            // Observed load counts once the machine carries something and has warmed up;
            // rounded down, so the room stays an upper bound.
            let carries = used || machine.participants > 0;
            let warm = at.duration_since(machine.started).unwrap_or_default() >= warmup;
            let observed = if carries && warm {
                Units::try_from(machine.observed.max(0)).unwrap_or(Units::MAX)
            } else {
                0
            };
            let load = machine.committed.max(observed);
            let room = class.limit(machine.capacity).saturating_sub(load);
            if room >= demand {
                return false;
            }
            if class.spans && room > 0 {
                let at = most_room.partition_point(|r| *r >= room);
                if at < MAX_SPAN_NODES as usize {
                    most_room.insert(at, room);
                    most_room.truncate(MAX_SPAN_NODES as usize);
                }
            }
        }
        // As `decide` splits: the node with the most room is the origin, and the n-th most
        // roomy takes an edge's share.
        !(2..=most_room.len()).any(|nodes| {
            let (origin, edge) = split_shares(spec.class, spec.size, demand, nodes as u32);
            most_room[0] >= origin && most_room[nodes - 1] >= edge
        })
    }

    fn takes_shortcut(&self) -> bool {
        match self.shortcut {
            Shortcut::Take => true,
            #[cfg(test)]
            Shortcut::Verify => true,
            #[cfg(test)]
            Shortcut::Off => false,
        }
    }

    /// What `place` answers after asking production's `decide`.
    fn asked(&mut self, cluster: &Cluster, request: &Request<'_>, now: Millis) -> Placement {
        let spec = request.spec;
        match self.decide(cluster, spec, now) {
            Decision::Place { node, demand } => match Self::machine_named(cluster, &node) {
                Some(id) => Placement::On(vec![(id, demand)]),
                None => Placement::Refuse(format!("decide named an unknown node {node}")),
            },
            Decision::Split {
                origin,
                edges,
                origin_demand,
                edge_demand,
            } => {
                let mut shares: Vec<(MachineId, Units)> = Vec::with_capacity(edges.len() + 1);
                for (name, units) in std::iter::once((&origin, origin_demand))
                    .chain(edges.iter().map(|e| (e, edge_demand)))
                {
                    match Self::machine_named(cluster, name) {
                        Some(id) => shares.push((id, units)),
                        None => {
                            return Placement::Refuse(format!(
                                "decide named an unknown node {name}"
                            ));
                        }
                    }
                }
                Placement::On(shares)
            }
            Decision::NeedCapacity {
                demand,
                machine_type,
                ..
            } => {
                // What `ionctl place --wait` writes for the autoscaler.
                if !self.pending.iter().any(|p| p.sid == spec.sid) {
                    self.pending.push(PendingDemand {
                        sid: spec.sid.clone(),
                        class: spec.class,
                        size: spec.size,
                        demand,
                        machine_type: Some(machine_type),
                        since: system_time(request.since),
                    });
                }
                Placement::Wait
            }
            Decision::Refuse { reason } => Placement::Refuse(reason),
            other @ (Decision::Existing { .. } | Decision::Extend { .. }) => {
                Placement::Refuse(format!("a new session got {other:?}"))
            }
        }
    }
}

impl Policy for Ours {
    fn name(&self) -> &str {
        "ours"
    }

    fn summary(&self) -> String {
        let warm: Vec<String> = self
            .config
            .autoscale
            .warm_pool
            .iter()
            .map(|(t, n)| format!("{t}={n}"))
            .collect();
        format!(
            "production decide ({:?}, reservations) + plan (warm pool {}, idle timeout {}s, \
             pack {})",
            self.config.strategy,
            if warm.is_empty() {
                "none".to_owned()
            } else {
                warm.join(",")
            },
            self.config.autoscale.idle_timeout.as_secs(),
            self.config.autoscale.pack_machine_type
        )
        .to_lowercase()
    }

    fn initial_fleet(&self) -> Vec<String> {
        let policy = &self.config.autoscale;
        let mut fleet: Vec<String> = policy
            .warm_pool
            .iter()
            .flat_map(|(t, n)| std::iter::repeat_n(t.clone(), *n as usize))
            .collect();
        while (fleet.len() as u32) < policy.min_nodes {
            fleet.push(policy.pack_machine_type.clone());
        }
        fleet
    }

    fn start(&mut self, cluster: &Cluster) {
        // The initial fleet was started by this autoscaler, so it may drain and delete it.
        for machine in cluster.live() {
            self.instances.push(InstanceRecord {
                name: machine.name.clone(),
                provider: "sim".to_owned(),
                zone: "sim".to_owned(),
                machine_type: machine.machine_type.to_owned(),
                hold_for: None,
                demands: Vec::new(),
                state: InstanceState::Ready,
                created_at: before_start(),
                registered_at: Some(before_start()),
                note: None,
            });
        }
    }

    fn scale_interval(&self) -> Option<Millis> {
        Some(self.config.interval)
    }

    fn place(&mut self, cluster: &Cluster, request: &Request<'_>, now: Millis) -> Placement {
        if !self.takes_shortcut() || !self.cannot_fit_yet(cluster, request, now) {
            return self.asked(cluster, request, now);
        }
        #[cfg(test)]
        if self.shortcut == Shortcut::Verify {
            let spec = request.spec;
            let decision = self.decide(cluster, spec, now);
            if matches!(decision, Decision::NeedCapacity { .. }) {
                *self.verified.0.entry(spec.class).or_default() += 1;
            } else {
                self.verified
                    .1
                    .push(format!("{} at {now} ms: {decision:?}", spec.sid));
            }
        }
        Placement::Wait
    }

    fn placed(&mut self, cluster: &Cluster, request: &Request<'_>, now: Millis) {
        let spec = request.spec;
        self.pending.retain(|p| p.sid != spec.sid);
        let shares = &cluster.sessions[request.index as usize].shares;
        if shares.len() > 1 {
            let name = |id: MachineId| cluster.machine(id).name.clone();
            self.splits.insert(
                request.index,
                SessionRecord {
                    sid: spec.sid.clone(),
                    class: spec.class,
                    size: spec.size,
                    demand: shares[0].1,
                    node: name(shares[0].0),
                    state: SessionState::Live,
                    relays: shares[1..].iter().map(|s| name(s.0)).collect(),
                    edge_demand: shares.get(1).map_or(0, |s| s.1),
                    created_at: system_time(now),
                },
            );
            if let Some(split) = self.splits.get(&request.index) {
                self.sessions.put(split.clone());
            }
        }
    }

    fn ended(&mut self, session: u32) {
        if let Some(split) = self.splits.remove(&session) {
            self.sessions.remove(&split.sid);
        }
    }

    fn abandoned(&mut self, spec: &SessionSpec) {
        self.pending.retain(|p| p.sid != spec.sid);
    }

    fn scale(&mut self, cluster: &mut Cluster, now: Millis) {
        self.refresh(cluster, now);
        let at = system_time(now);
        // As the autoscaler loop does: idle since the first tick that saw the node carry
        // nothing, forgotten the moment it carries something.
        self.idle_since.retain(|id, _| {
            cluster
                .by_name(id)
                .is_some_and(|m| cluster.machine(m).is_ready())
        });
        for (index, node) in self.nodes.iter().enumerate() {
            let machine = cluster.machine(self.node_machine[index]);
            let idle = machine.sessions.is_empty() && machine.participants == 0;
            // The map is touched only when a node turns idle or busy: a lookup per node and
            // tick in the ordered map was a tenth of a day's run.
            if idle != self.idle_flags[index] {
                if idle {
                    self.idle_since.insert(node.id.clone(), at);
                } else {
                    self.idle_since.remove(&node.id);
                }
                self.idle_flags[index] = idle;
            }
        }
        self.recent_spawns
            .retain(|_, spawned| at.duration_since(*spawned).unwrap_or_default() < SPAWN_WINDOW);
        let snapshot = autoscale::Snapshot {
            now: at,
            nodes: std::mem::take(&mut self.nodes),
            sessions: std::mem::take(&mut self.sessions),
            drains: std::mem::take(&mut self.drains),
            pending: std::mem::take(&mut self.pending),
            instances: std::mem::take(&mut self.instances),
            idle_since: std::mem::take(&mut self.idle_since),
            recent_spawns: self.recent_spawns.values().copied().collect(),
        };
        let actions = autoscale::plan(&snapshot, &self.config.autoscale);
        self.nodes = snapshot.nodes;
        self.sessions = snapshot.sessions;
        self.drains = snapshot.drains;
        self.pending = snapshot.pending;
        self.instances = snapshot.instances;
        self.idle_since = snapshot.idle_since;
        for action in actions {
            match action {
                Action::Spawn {
                    machine_type,
                    hold_for,
                    for_demands,
                    ..
                } => {
                    let Some(id) = cluster.spawn(&machine_type, hold_for.clone(), now) else {
                        continue;
                    };
                    let name = cluster.machine(id).name.clone();
                    self.recent_spawns.insert(name.clone(), at);
                    self.instances.push(InstanceRecord {
                        name,
                        provider: "sim".to_owned(),
                        zone: "sim".to_owned(),
                        machine_type,
                        hold_for,
                        demands: for_demands,
                        state: InstanceState::Booting,
                        created_at: at,
                        registered_at: None,
                        note: None,
                    });
                }
                Action::Drain { node, reason } => {
                    if let Some(id) = cluster.by_name(&node) {
                        cluster.drain(id);
                    }
                    self.drain_set.insert(node.clone());
                    self.drains.insert(
                        node,
                        DrainRequest {
                            requested_at: at,
                            deadline: None,
                            reason: Some(reason),
                        },
                    );
                }
                Action::Delete { instance, .. } => {
                    if let Some(id) = cluster.by_name(&instance) {
                        cluster.delete(id, now);
                    }
                    self.instances.retain(|i| i.name != instance);
                    self.drains.remove(&instance);
                    self.drain_set.remove(&instance);
                    self.idle_since.remove(&instance);
                }
            }
        }
    }
}

/// The production records a full snapshot would hold, one per placed session: for the test
/// that shows the per-node sums give the same decisions.
#[cfg(test)]
pub(crate) fn full_sessions(
    cluster: &Cluster,
    trace: &crate::simulate::trace::Trace,
    at: SystemTime,
) -> Vec<SessionRecord> {
    use crate::simulate::cluster::SessionState as Run;
    cluster
        .sessions
        .iter()
        .enumerate()
        .filter(|(_, run)| matches!(run.state, Run::Placed { .. }))
        .map(|(index, run)| {
            let spec = &trace.sessions[index];
            let name = |id: MachineId| cluster.machine(id).name.clone();
            SessionRecord {
                sid: spec.sid.clone(),
                class: spec.class,
                size: spec.size,
                demand: run.shares[0].1,
                node: name(run.shares[0].0),
                state: SessionState::Live,
                relays: run.shares[1..].iter().map(|s| name(s.0)).collect(),
                edge_demand: run.shares.get(1).map_or(0, |s| s.1),
                created_at: at,
            }
        })
        .collect()
}

#[cfg(test)]
impl Ours {
    /// `decide` on the records this policy holds, and on the same records with every placed
    /// session as its own record.
    pub(crate) fn decide_both_ways(
        &mut self,
        cluster: &Cluster,
        trace: &crate::simulate::trace::Trace,
        spec: &SessionSpec,
        now: Millis,
    ) -> (Decision, Decision) {
        let compact = self.decide(cluster, spec, now);
        let request = self.request_for(spec);
        let mut snapshot = self.placement_snapshot(now);
        let compacted = std::mem::replace(
            &mut snapshot.sessions,
            full_sessions(cluster, trace, system_time(now)).into(),
        );
        let full = placement::decide(&snapshot, &request, &self.config.placement);
        snapshot.sessions = compacted;
        self.restore_placement(snapshot);
        (compact, full)
    }
}
