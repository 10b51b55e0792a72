//! LiveKit's node selection (livekit/livekit `pkg/routing/selector`, and the `node_selector`
//! section of its config-sample.yaml): a node is available when its stats are recent and it
//! is not shutting down; the `cpuload` selector keeps the nodes whose CPU load is under
//! `cpu_load_limit` (0.9), or all available ones when none is; `sort_by` then picks with
//! the `lowest` algorithm (the least loaded) or `twochoice` (two at random, the less loaded
//! of them). There is no reservation: a room's load counts once its node reports it.
//! (`sysload` is the same rule on load average per CPU; in the simulation both read the
//! reported CPU.)
//!
//! LiveKit has no autoscaler of its own: a fixed fleet, or on Kubernetes a
//! HorizontalPodAutoscaler on CPU (kubernetes.io, "Horizontal Pod Autoscaling"): every 15 s,
//! desired = ceil(Σ utilisation of ready pods / target 0.6), not-ready pods counting as 0
//! when scaling up, no change within a tolerance of 10%, scale-up by at most
//! max(4 pods, 100%) per period, scale-down to the highest recommendation of the last 5
//! minutes (the default stabilisation window). A pod that goes stops taking rooms and ends
//! when its last room ends (LiveKit's graceful shutdown).

use fastrand::Rng;

use super::{Placement, Policy, Request, Stabilised, invalid_size, least_loaded, lowest_cpu};
use crate::simulate::clock::{MINUTE, Millis, SECOND};
use crate::simulate::cluster::{Cluster, Machine};

pub const CPU_LOAD_LIMIT: f64 = 0.9;
pub const HPA_TARGET: f64 = 0.6;
pub const HPA_TOLERANCE: f64 = 0.1;
pub const HPA_PERIOD: Millis = 15 * SECOND;
pub const HPA_SCALE_DOWN_WINDOW: Millis = 5 * MINUTE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Lowest,
    TwoChoice,
}

struct Hpa {
    min: u32,
    max: u32,
    window: Stabilised,
}

pub struct LiveKit {
    name: &'static str,
    algorithm: Algorithm,
    machine_type: String,
    fleet: u32,
    hpa: Option<Hpa>,
    rng: Rng,
}

impl LiveKit {
    pub fn fixed(algorithm: Algorithm, machine_type: String, fleet: u32, seed: u64) -> Self {
        Self {
            name: match algorithm {
                Algorithm::Lowest => "livekit-lowest",
                Algorithm::TwoChoice => "livekit-twochoice",
            },
            algorithm,
            machine_type,
            fleet: fleet.max(1),
            hpa: None,
            rng: Rng::with_seed(seed),
        }
    }

    pub fn hpa(machine_type: String, min: u32, max: u32, seed: u64) -> Self {
        let min = min.max(1);
        Self {
            name: "livekit-hpa",
            algorithm: Algorithm::TwoChoice,
            machine_type,
            fleet: min,
            hpa: Some(Hpa {
                min,
                max: max.max(min),
                window: Stabilised::new(HPA_SCALE_DOWN_WINDOW),
            }),
            rng: Rng::with_seed(seed),
        }
    }
}

impl Policy for LiveKit {
    fn name(&self) -> &str {
        self.name
    }

    fn summary(&self) -> String {
        let algorithm = match self.algorithm {
            Algorithm::Lowest => "lowest",
            Algorithm::TwoChoice => "twochoice",
        };
        match &self.hpa {
            None => format!(
                "cpuload selector, {algorithm}, no reservations, fixed fleet of {}",
                self.fleet
            ),
            Some(_) => {
                format!("cpuload selector, {algorithm}, no reservations, HPA on CPU {HPA_TARGET}")
            }
        }
    }

    fn initial_fleet(&self) -> Vec<String> {
        vec![self.machine_type.clone(); self.fleet as usize]
    }

    fn scale_interval(&self) -> Option<Millis> {
        self.hpa.as_ref().map(|_| HPA_PERIOD)
    }

    fn place(&mut self, cluster: &Cluster, request: &Request<'_>, _now: Millis) -> Placement {
        let Some(demand) = request.demand else {
            return invalid_size(request.spec);
        };
        let available: Vec<&Machine> = cluster.placeable().collect();
        let low: Vec<&Machine> = available
            .iter()
            .copied()
            .filter(|m| m.cpu() < CPU_LOAD_LIMIT)
            .collect();
        let pool = if low.is_empty() { available } else { low };
        let chosen = match self.algorithm {
            Algorithm::Lowest => lowest_cpu(pool.iter().copied(), Machine::cpu),
            Algorithm::TwoChoice if pool.len() >= 2 => {
                let first = self.rng.usize(..pool.len());
                let mut second = self.rng.usize(..pool.len() - 1);
                if second >= first {
                    second += 1;
                }
                // The first drawn wins a tie: equal loads do not favour low ids.
                let (a, b) = (pool[first], pool[second]);
                Some(if b.cpu() < a.cpu() { b } else { a })
            }
            Algorithm::TwoChoice => pool.first().copied(),
        };
        match chosen {
            Some(machine) => Placement::On(vec![(machine.id, demand)]),
            None => Placement::Wait,
        }
    }

    fn scale(&mut self, cluster: &mut Cluster, now: Millis) {
        let Some(hpa) = &mut self.hpa else {
            return;
        };
        let replicas = cluster.live().filter(|m| !m.draining).count() as u32;
        let used: f64 = cluster.placeable().map(Machine::cpu).sum();
        let ratio = used / (f64::from(replicas.max(1)) * HPA_TARGET);
        let mut desired = if (ratio - 1.0).abs() <= HPA_TOLERANCE {
            replicas
        } else {
            (used / HPA_TARGET).ceil() as u32
        };
        desired = desired
            .min(replicas + replicas.max(4))
            .clamp(hpa.min, hpa.max);
        let stabilised = hpa.window.record(now, desired);
        if desired > replicas {
            for _ in replicas..desired {
                cluster.spawn(&self.machine_type, None, now);
            }
            return;
        }
        if stabilised < replicas {
            for id in least_loaded(cluster, (replicas - stabilised) as usize) {
                cluster.retire(id, now);
            }
        }
    }
}
