//! The seed's coordinator (golivex/ion-sfu-coordinator, README "Solution": nodes publish their
//! load by heartbeat, a master picks the node for a new session from the load), as this
//! project's DESIGN records it: the node with the lowest reported CPU wins; the
//! coordinator counts its own placements on a node for 5 s so a burst does not all land on
//! one node before its CPU rises; a node is spawned when every node's CPU is above a
//! threshold. Assumptions where the seed says nothing: the threshold is 70% CPU, checked
//! every 10 s, one spawn at a time; and, so that its cost is not dominated by never
//! scaling in, a node empty for 5 minutes is deleted (the seed had no scale-in).

use std::collections::BTreeMap;

use super::{Placement, Policy, Request, invalid_size, lowest_cpu};
use crate::model::Units;
use crate::simulate::clock::{MINUTE, Millis, SECOND};
use crate::simulate::cluster::{Cluster, Machine, MachineId};

pub const RESERVATION: Millis = 5 * SECOND;
pub const SPAWN_CPU: f64 = 0.7;
pub const TICK: Millis = 10 * SECOND;
pub const IDLE_REAP: Millis = 5 * MINUTE;

pub struct Seed {
    machine_type: String,
    min_nodes: u32,
    max_nodes: u32,
    /// (when, machine, units) of placements younger than [`RESERVATION`].
    reservations: Vec<(Millis, MachineId, Units)>,
    idle_since: BTreeMap<MachineId, Millis>,
}

impl Seed {
    pub fn new(machine_type: String, min_nodes: u32, max_nodes: u32) -> Self {
        Self {
            machine_type,
            min_nodes: min_nodes.max(1),
            max_nodes,
            reservations: Vec::new(),
            idle_since: BTreeMap::new(),
        }
    }

    fn cpu(&self, machine: &Machine) -> f64 {
        let reserved: Units = self
            .reservations
            .iter()
            .filter(|(_, id, _)| *id == machine.id)
            .map(|(_, _, units)| units)
            .sum();
        machine.cpu() + f64::from(reserved) / f64::from(machine.capacity.max(1))
    }

    fn forget_old(&mut self, now: Millis) {
        self.reservations
            .retain(|(at, _, _)| now.saturating_sub(*at) < RESERVATION);
    }
}

impl Policy for Seed {
    fn name(&self) -> &str {
        "seed"
    }

    fn summary(&self) -> String {
        format!(
            "lowest CPU, 5 s reservation, spawn when all nodes are above {:.0}% CPU",
            SPAWN_CPU * 100.0
        )
    }

    fn initial_fleet(&self) -> Vec<String> {
        vec![self.machine_type.clone(); self.min_nodes as usize]
    }

    fn scale_interval(&self) -> Option<Millis> {
        Some(TICK)
    }

    fn place(&mut self, cluster: &Cluster, request: &Request<'_>, now: Millis) -> Placement {
        let Some(demand) = request.demand else {
            return invalid_size(request.spec);
        };
        self.forget_old(now);
        match lowest_cpu(cluster.placeable(), |m| self.cpu(m)) {
            Some(machine) => Placement::On(vec![(machine.id, demand)]),
            None => Placement::Wait,
        }
    }

    fn placed(&mut self, cluster: &Cluster, request: &Request<'_>, now: Millis) {
        for (id, units, _) in &cluster.sessions[request.index as usize].shares {
            self.reservations.push((now, *id, *units));
        }
    }

    fn scale(&mut self, cluster: &mut Cluster, now: Millis) {
        self.forget_old(now);
        let booting = cluster.live().any(|m| m.is_booting());
        let live = cluster.live().count() as u32;
        let all_busy = cluster.placeable().all(|m| self.cpu(m) >= SPAWN_CPU);
        if !booting && all_busy && live < self.max_nodes {
            cluster.spawn(&self.machine_type, None, now);
        }
        let ready: Vec<(MachineId, bool)> = cluster
            .placeable()
            .map(|m| (m.id, m.sessions.is_empty()))
            .collect();
        self.idle_since
            .retain(|id, _| ready.iter().any(|(r, idle)| r == id && *idle));
        let mut left = live;
        for (id, idle) in ready {
            if !idle {
                continue;
            }
            let since = *self.idle_since.entry(id).or_insert(now);
            if now - since >= IDLE_REAP && left > self.min_nodes {
                cluster.retire(id, now);
                self.idle_since.remove(&id);
                left -= 1;
            }
        }
    }
}
