//! The simulated cluster: machines (booting, ready, draining, gone), where every session
//! sits, the load each machine carries now and the load it reports (which lags), and what
//! all of it costs. Policies read it and act on it through its methods; the events those
//! actions cause later (a machine registering, a hold expiring, a load report) go to the
//! outbox, which the engine moves into its queue.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use super::clock::{Millis, before_start, system_time};
use super::engine::Event;
use super::trace::{SessionSpec, demand_of};
use crate::capacity::{ClassSpec, MachineType};
use crate::model::{SessionClass, Units};

pub type MachineId = u32;

/// One machine, from the request that created it to its deletion.
#[derive(Debug, Clone)]
pub struct Machine {
    pub id: MachineId,
    pub name: String,
    pub machine_type: &'static str,
    pub vcpus: u32,
    pub capacity: Units,
    /// When it was asked for; billing starts here.
    pub spawned_at: Millis,
    /// When its agent started (warm-up counts from here).
    pub started: SystemTime,
    /// When its agent registered; `None` while it boots.
    pub ready_at: Option<Millis>,
    pub gone_at: Option<Millis>,
    pub draining: bool,
    /// Delete it once its last session ends.
    pub retire: bool,
    /// The session it is held for, once registered, until that session is placed on it or
    /// the hold expires.
    pub hold_for: Option<String>,
    /// Units reserved on it, by every session on it (whole or a share of a split one).
    pub committed: Units,
    /// Units reserved by the sessions that sit on it whole.
    pub committed_whole: Units,
    /// Sessions of a dedicated class that sit on it whole.
    pub dedicated_whole: u32,
    /// Sessions of a dedicated class with a share on it, whole or split.
    pub dedicated: u32,
    /// What its sessions cost right now.
    pub actual: Units,
    /// What its agent reports: `actual` as it was a load lag ago.
    pub observed: i64,
    pub sessions: Vec<u32>,
    pub participants: u32,
    /// Participants that joined here lately: (when, how many).
    pub recent_joins: VecDeque<(Millis, u32)>,
    last_change: Millis,
    /// Unit-milliseconds of demand above capacity.
    pub over_capacity_unit_ms: f64,
}

impl Machine {
    pub fn is_live(&self) -> bool {
        self.gone_at.is_none()
    }

    pub fn is_ready(&self) -> bool {
        self.ready_at.is_some() && self.gone_at.is_none()
    }

    pub fn is_booting(&self) -> bool {
        self.ready_at.is_none() && self.gone_at.is_none()
    }

    /// Ready and not draining: a policy may place sessions here.
    pub fn takes_sessions(&self) -> bool {
        self.is_ready() && !self.draining
    }

    /// The reported CPU, 0..1 of the machine (above 1 when overloaded).
    pub fn cpu(&self) -> f64 {
        self.observed.max(0) as f64 / f64::from(self.capacity.max(1))
    }

    /// Participants that joined within `window` before `now`.
    pub fn joins_within(&self, now: Millis, window: Millis) -> u32 {
        self.recent_joins
            .iter()
            .filter(|(at, _)| now.saturating_sub(*at) < window)
            .map(|(_, n)| n)
            .sum()
    }

    fn account(&mut self, now: Millis) {
        let over = f64::from(self.actual.saturating_sub(self.capacity));
        self.over_capacity_unit_ms += over * now.saturating_sub(self.last_change) as f64;
        self.last_change = now;
    }
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    NotYet,
    Waiting {
        since: Millis,
    },
    Placed {
        at: Millis,
    },
    Ended,
    Refused,
    /// Waited longer than the callers' patience.
    Abandoned,
    /// Its machine was deleted under it.
    Dropped,
}

/// A session's run in one simulation.
#[derive(Debug, Clone)]
pub struct SessionRun {
    pub state: SessionState,
    pub class: SessionClass,
    /// (machine, reserved units, units it costs there now); the first is the origin.
    pub shares: Vec<(MachineId, Units, Units)>,
    pub participants: u32,
    /// The machine it was placed on (its origin), kept after it ends.
    pub origin: Option<MachineId>,
    /// Demand rose above its class's headroom on one of its machines at some instant.
    pub overloaded: bool,
}

/// What the cluster's behaviour depends on beyond the policies.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    pub units_per_vcpu: Units,
    pub boot_delay: Millis,
    pub boot_delay_by_type: BTreeMap<String, Millis>,
    /// Reported load trails the load carried by this long.
    pub load_lag: Millis,
    /// An agent drops a hold its session never took after this long (the agent's hold_ttl).
    pub hold_ttl: Millis,
    /// How long joins count as recent (for policies that correct for them).
    pub recent_window: Millis,
}

/// Scale events so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub spawns: u32,
    pub drains: u32,
    pub deletes: u32,
    pub dropped: u32,
}

#[derive(Debug)]
pub struct Cluster {
    pub settings: ClusterSettings,
    pub machines: Vec<Machine>,
    /// Ids of machines not yet gone, ascending.
    live: Vec<MachineId>,
    pub sessions: Vec<SessionRun>,
    /// Bumped whenever a machine registers, drains, goes or its hold changes.
    pub generation: u64,
    pub counters: Counters,
    /// Sessions placed and not ended nor dropped.
    pub placed_now: u32,
    pub(super) outbox: Vec<(Millis, Event)>,
}

impl Cluster {
    pub fn new(settings: ClusterSettings, sessions: &[SessionSpec]) -> Self {
        Self {
            settings,
            machines: Vec::new(),
            live: Vec::new(),
            sessions: sessions
                .iter()
                .map(|s| SessionRun {
                    state: SessionState::NotYet,
                    class: s.class,
                    shares: Vec::new(),
                    participants: 0,
                    origin: None,
                    overloaded: false,
                })
                .collect(),
            generation: 0,
            counters: Counters::default(),
            placed_now: 0,
            outbox: Vec::new(),
        }
    }

    pub fn machine(&self, id: MachineId) -> &Machine {
        &self.machines[id as usize]
    }

    /// Machines not yet gone, in id order.
    pub fn live(&self) -> impl Iterator<Item = &Machine> {
        self.live.iter().map(|id| &self.machines[*id as usize])
    }

    /// Machines a policy may place sessions on, in id order.
    pub fn placeable(&self) -> impl Iterator<Item = &Machine> {
        self.live().filter(|m| m.takes_sessions())
    }

    pub fn by_name(&self, name: &str) -> Option<MachineId> {
        // Names are "sim-<id>".
        let id: MachineId = name.strip_prefix("sim-")?.parse().ok()?;
        self.machines.get(id as usize).map(|m| m.id)
    }

    pub fn boot_delay(&self, machine_type: &str) -> Millis {
        self.settings
            .boot_delay_by_type
            .get(machine_type)
            .copied()
            .unwrap_or(self.settings.boot_delay)
    }

    fn new_machine(&mut self, machine_type: &str, now: Millis) -> Option<MachineId> {
        let catalogue = MachineType::by_name(machine_type)?;
        let id = MachineId::try_from(self.machines.len()).ok()?;
        self.machines.push(Machine {
            id,
            name: format!("sim-{id:05}"),
            machine_type: catalogue.name,
            vcpus: catalogue.vcpus,
            capacity: catalogue.capacity(self.settings.units_per_vcpu),
            spawned_at: now,
            started: system_time(now),
            ready_at: None,
            gone_at: None,
            draining: false,
            retire: false,
            hold_for: None,
            committed: 0,
            committed_whole: 0,
            dedicated_whole: 0,
            dedicated: 0,
            actual: 0,
            observed: 0,
            sessions: Vec::new(),
            participants: 0,
            recent_joins: VecDeque::new(),
            last_change: now,
            over_capacity_unit_ms: 0.0,
        });
        self.live.push(id);
        Some(id)
    }

    /// A machine of the initial fleet: ready at instant 0, its agent long started.
    pub fn add_ready(&mut self, machine_type: &str) -> Option<MachineId> {
        let id = self.new_machine(machine_type, 0)?;
        let machine = &mut self.machines[id as usize];
        machine.ready_at = Some(0);
        machine.started = before_start();
        self.generation += 1;
        Some(id)
    }

    /// Asks for a machine; it registers after its type's boot delay. `None` for a type
    /// outside the catalogue.
    pub fn spawn(
        &mut self,
        machine_type: &str,
        hold_for: Option<String>,
        now: Millis,
    ) -> Option<MachineId> {
        let id = self.new_machine(machine_type, now)?;
        self.machines[id as usize].hold_for = hold_for;
        self.counters.spawns += 1;
        let at = now + self.boot_delay(machine_type);
        self.outbox.push((at, Event::Boot(id)));
        Some(id)
    }

    pub(super) fn boot(&mut self, id: MachineId, now: Millis) {
        let hold_ttl = self.settings.hold_ttl;
        let machine = &mut self.machines[id as usize];
        if !machine.is_live() {
            return;
        }
        machine.ready_at = Some(now);
        machine.started = system_time(now);
        if machine.hold_for.is_some() {
            self.outbox.push((now + hold_ttl, Event::HoldExpire(id)));
        }
        self.generation += 1;
    }

    pub(super) fn hold_expire(&mut self, id: MachineId) {
        let machine = &mut self.machines[id as usize];
        if machine.hold_for.take().is_some() {
            self.generation += 1;
        }
    }

    /// No new sessions on `id`; its sessions go on.
    pub fn drain(&mut self, id: MachineId) {
        let machine = &mut self.machines[id as usize];
        if machine.is_live() && !machine.draining {
            machine.draining = true;
            self.counters.drains += 1;
            self.generation += 1;
        }
    }

    /// Drains `id` and deletes it once its last session has ended.
    pub fn retire(&mut self, id: MachineId, now: Millis) {
        self.drain(id);
        let machine = &mut self.machines[id as usize];
        machine.retire = true;
        if machine.is_live() && machine.sessions.is_empty() {
            self.delete(id, now);
        }
    }

    /// Deletes `id` now; sessions still on it are dropped.
    pub fn delete(&mut self, id: MachineId, now: Millis) {
        if !self.machines[id as usize].is_live() {
            return;
        }
        // Not retiring any more: emptying it below must not delete it a second time.
        self.machines[id as usize].retire = false;
        let victims = self.machines[id as usize].sessions.clone();
        for session in victims {
            self.remove_session(session, now);
            self.sessions[session as usize].state = SessionState::Dropped;
            self.counters.dropped += 1;
        }
        let machine = &mut self.machines[id as usize];
        machine.account(now);
        machine.gone_at = Some(now);
        self.live.retain(|m| *m != id);
        self.counters.deletes += 1;
        self.generation += 1;
    }

    pub(super) fn observe(&mut self, id: MachineId, delta: i64) {
        self.machines[id as usize].observed += delta;
    }

    pub fn is_waiting(&self, session: u32) -> bool {
        matches!(
            self.sessions[session as usize].state,
            SessionState::Waiting { .. }
        )
    }

    pub(super) fn set_state(&mut self, session: u32, state: SessionState) {
        self.sessions[session as usize].state = state;
    }

    /// Puts `session` on `shares` (machine, reserved units; the first is the origin).
    pub(super) fn commit(
        &mut self,
        session: u32,
        spec: &SessionSpec,
        shares: &[(MachineId, Units)],
        now: Millis,
    ) {
        let whole = shares.len() == 1;
        let dedicated = ClassSpec::of(spec.class).dedicated;
        for (id, units) in shares {
            let machine = &mut self.machines[*id as usize];
            machine.committed = machine.committed.saturating_add(*units);
            machine.dedicated += u32::from(dedicated);
            if whole {
                machine.committed_whole = machine.committed_whole.saturating_add(*units);
                machine.dedicated_whole += u32::from(dedicated);
            }
            machine.sessions.push(session);
            // The agent releases a hold when its session goes live there.
            if machine.hold_for.as_deref() == Some(spec.sid.as_str()) {
                machine.hold_for = None;
                self.generation += 1;
            }
        }
        let run = &mut self.sessions[session as usize];
        run.state = SessionState::Placed { at: now };
        self.placed_now += 1;
        run.shares = shares.iter().map(|(id, units)| (*id, *units, 0)).collect();
        run.participants = 0;
        run.origin = shares.first().map(|s| s.0);
    }

    /// The session now has `count` participants: its demand is spread over its machines in
    /// proportion to what each reserved.
    pub(super) fn set_participants(&mut self, session: u32, count: u32, now: Millis) {
        let lag = self.settings.load_lag;
        let run = &mut self.sessions[session as usize];
        let class = run.class;
        let demand = demand_of(class, count);
        let joined = count.saturating_sub(run.participants);
        let previous = run.participants;
        run.participants = count;
        let reserved: u64 = run.shares.iter().map(|s| u64::from(s.1)).sum();
        let mut left = demand;
        let mut changes: Vec<(MachineId, i64)> = Vec::with_capacity(run.shares.len());
        for (i, share) in run.shares.iter_mut().enumerate().rev() {
            let here = if i == 0 {
                left
            } else {
                let part = (u64::from(demand) * u64::from(share.1))
                    .checked_div(reserved)
                    .unwrap_or(0);
                let part = Units::try_from(part).unwrap_or(Units::MAX).min(left);
                left -= part;
                part
            };
            changes.push((share.0, i64::from(here) - i64::from(share.2)));
            share.2 = here;
        }
        let origin = run.shares.first().map(|s| s.0);
        for (id, delta) in changes {
            let machine = &mut self.machines[id as usize];
            machine.account(now);
            machine.actual = Units::try_from(i64::from(machine.actual) + delta).unwrap_or(0);
            if Some(id) == origin {
                machine.participants = (machine.participants + count).saturating_sub(previous);
                if joined > 0 {
                    machine.recent_joins.push_back((now, joined));
                    let window = self.settings.recent_window;
                    while machine
                        .recent_joins
                        .front()
                        .is_some_and(|(at, _)| now.saturating_sub(*at) >= window)
                    {
                        machine.recent_joins.pop_front();
                    }
                }
            }
            if delta != 0 {
                self.outbox.push((now + lag, Event::Observe(id, delta)));
            }
            if delta > 0 {
                self.mark_overloaded(id);
            }
        }
    }

    /// Marks every session on `id` when its demand is above the headroom of every class on
    /// it: a node may fill to the highest headroom of the classes it carries (a group may
    /// take a node to 90% beside a meeting, whose own limit is 80%), not beyond.
    fn mark_overloaded(&mut self, id: MachineId) {
        let machine = &self.machines[id as usize];
        let limit = machine
            .sessions
            .iter()
            .map(|s| ClassSpec::of(self.sessions[*s as usize].class).limit(machine.capacity))
            .max()
            .unwrap_or(machine.capacity);
        if machine.actual <= limit {
            return;
        }
        for session in &machine.sessions {
            self.sessions[*session as usize].overloaded = true;
        }
    }

    /// The session ends: its load and reservations leave its machines.
    pub(super) fn end(&mut self, session: u32, now: Millis) {
        self.remove_session(session, now);
        self.sessions[session as usize].state = SessionState::Ended;
    }

    fn remove_session(&mut self, session: u32, now: Millis) {
        self.set_participants(session, 0, now);
        self.placed_now -= 1;
        let run = &mut self.sessions[session as usize];
        let shares = std::mem::take(&mut run.shares);
        let dedicated = ClassSpec::of(run.class).dedicated;
        let whole = shares.len() == 1;
        let mut emptied = Vec::new();
        for (id, units, _) in shares {
            let machine = &mut self.machines[id as usize];
            machine.committed = machine.committed.saturating_sub(units);
            machine.dedicated -= u32::from(dedicated).min(machine.dedicated);
            if whole {
                machine.committed_whole = machine.committed_whole.saturating_sub(units);
                machine.dedicated_whole -= u32::from(dedicated).min(machine.dedicated_whole);
            }
            machine.sessions.retain(|s| *s != session);
            if machine.retire && machine.sessions.is_empty() && machine.is_live() {
                emptied.push(id);
            }
        }
        for id in emptied {
            self.delete(id, now);
        }
    }

    /// Bills every machine up to `end`.
    pub(super) fn close(&mut self, end: Millis) {
        for machine in &mut self.machines {
            if machine.is_live() {
                machine.account(end);
            }
        }
    }
}
