//! A Compute Engine managed instance group with its autoscaler (cloud.google.com, "Scaling
//! based on CPU utilization", "Initialization period", "Scale-in controls"): it keeps the
//! group's average CPU at the target (0.6); VMs within the initialization period (60 s
//! after they start serving) are left out of the average; it scales out at once, and
//! scales in only to the largest size it recommended over the last 10 minutes (the
//! stabilisation period). A MIG does not drain: a VM removed on scale-in is deleted with
//! the sessions on it, which the report counts as dropped. Sessions reach the group the
//! way a load balancer in UTILIZATION mode sends them: to the VM with the lowest CPU.

use super::{Placement, Policy, Request, Stabilised, invalid_size, least_loaded, lowest_cpu};
use crate::simulate::clock::{MINUTE, Millis, SECOND};
use crate::simulate::cluster::{Cluster, Machine};

pub const TARGET_CPU: f64 = 0.6;
pub const INITIALIZATION: Millis = 60 * SECOND;
pub const STABILISATION: Millis = 10 * MINUTE;
pub const PERIOD: Millis = 15 * SECOND;

pub struct GceMig {
    machine_type: String,
    min_nodes: u32,
    max_nodes: u32,
    window: Stabilised,
}

impl GceMig {
    pub fn new(machine_type: String, min_nodes: u32, max_nodes: u32) -> Self {
        Self {
            machine_type,
            min_nodes: min_nodes.max(1),
            max_nodes,
            window: Stabilised::new(STABILISATION),
        }
    }
}

impl Policy for GceMig {
    fn name(&self) -> &str {
        "gce-mig"
    }

    fn summary(&self) -> String {
        format!(
            "lowest CPU, MIG autoscaler on CPU {TARGET_CPU}, 60 s initialization, 10 min \
             scale-in stabilisation, no drain"
        )
    }

    fn initial_fleet(&self) -> Vec<String> {
        vec![self.machine_type.clone(); self.min_nodes as usize]
    }

    fn scale_interval(&self) -> Option<Millis> {
        Some(PERIOD)
    }

    fn place(&mut self, cluster: &Cluster, request: &Request<'_>, _now: Millis) -> Placement {
        let Some(demand) = request.demand else {
            return invalid_size(request.spec);
        };
        match lowest_cpu(cluster.placeable(), Machine::cpu) {
            Some(vm) => Placement::On(vec![(vm.id, demand)]),
            None => Placement::Wait,
        }
    }

    fn scale(&mut self, cluster: &mut Cluster, now: Millis) {
        let size = cluster.live().count() as u32;
        let initialized: Vec<f64> = cluster
            .placeable()
            .filter(|m| m.ready_at.is_some_and(|at| now - at >= INITIALIZATION))
            .map(Machine::cpu)
            .collect();
        // VMs still initializing carry nothing yet and are left out of the measure; the
        // recommendation is the size whose average would sit at the target.
        let recommended = if initialized.is_empty() {
            size
        } else {
            (initialized.iter().sum::<f64>() / TARGET_CPU).ceil() as u32
        }
        .clamp(self.min_nodes, self.max_nodes);
        let target = self.window.record(now, recommended);
        if recommended > size {
            for _ in size..recommended {
                cluster.spawn(&self.machine_type, None, now);
            }
            return;
        }
        if target < size {
            for id in least_loaded(cluster, (size - target) as usize) {
                cluster.delete(id, now);
            }
        }
    }
}
