//! Jitsi. Bridge selection is Jicofo's (jitsi/jicofo `BridgeSelectionStrategy` and
//! `Bridge.correctedStress`, defaults in its reference.conf): a bridge's stress as it last
//! reported it, corrected by `average-participant-stress` (0.01) for each participant
//! added to it within `participant-rampup-interval` (20 s); a bridge at or above
//! `stress-threshold` (0.8) is overloaded and only chosen when every bridge is; among the
//! rest the least stressed wins. A conference stays on its bridge (no Octo here).
//!
//! Scaling is jitsi-autoscaler's (jitsi/jitsi-autoscaler, group `scalingOptions`): every
//! `scalePeriod` (60 s) the group's average stress is recorded; the group grows by
//! `scaleUpQuantity` (1) when the last `scaleUpPeriodsCount` (2) periods were all at or
//! above `scaleUpThreshold`, and shrinks by `scaleDownQuantity` (1) when the last
//! `scaleDownPeriodsCount` (4) were all below `scaleDownThreshold`; after any change it
//! waits `gracePeriodTTLSec` (480 s), and it changes nothing while launches are pending. A
//! bridge scaled down shuts down gracefully: no new conferences, gone when empty. The
//! thresholds, 0.8 and 0.3, are assumptions (the project's sample group uses them).

use std::collections::VecDeque;

use super::{Placement, Policy, Request, invalid_size, least_loaded};
use crate::simulate::clock::{Millis, SECOND};
use crate::simulate::cluster::{Cluster, Machine};

pub const PARTICIPANT_STRESS: f64 = 0.01;
pub const RAMPUP: Millis = 20 * SECOND;
pub const STRESS_THRESHOLD: f64 = 0.8;
pub const SCALE_PERIOD: Millis = 60 * SECOND;
pub const SCALE_UP_THRESHOLD: f64 = 0.8;
pub const SCALE_DOWN_THRESHOLD: f64 = 0.3;
pub const SCALE_UP_PERIODS: usize = 2;
pub const SCALE_DOWN_PERIODS: usize = 4;
pub const GRACE: Millis = 480 * SECOND;

pub struct Jitsi {
    machine_type: String,
    min_nodes: u32,
    max_nodes: u32,
    stress_history: VecDeque<f64>,
    last_change: Option<Millis>,
}

impl Jitsi {
    pub fn new(machine_type: String, min_nodes: u32, max_nodes: u32) -> Self {
        Self {
            machine_type,
            min_nodes: min_nodes.max(1),
            max_nodes,
            stress_history: VecDeque::new(),
            last_change: None,
        }
    }
}

/// Jicofo's corrected stress of `bridge` at `now`.
pub fn corrected_stress(bridge: &Machine, now: Millis) -> f64 {
    bridge.cpu() + PARTICIPANT_STRESS * f64::from(bridge.joins_within(now, RAMPUP))
}

impl Policy for Jitsi {
    fn name(&self) -> &str {
        "jitsi"
    }

    fn summary(&self) -> String {
        format!(
            "least corrected stress (20 s ramp-up), jitsi-autoscaler {SCALE_UP_THRESHOLD}/\
             {SCALE_DOWN_THRESHOLD} over 2/4 periods of 60 s, 480 s grace"
        )
    }

    fn initial_fleet(&self) -> Vec<String> {
        vec![self.machine_type.clone(); self.min_nodes as usize]
    }

    fn scale_interval(&self) -> Option<Millis> {
        Some(SCALE_PERIOD)
    }

    fn place(&mut self, cluster: &Cluster, request: &Request<'_>, now: Millis) -> Placement {
        let Some(demand) = request.demand else {
            return invalid_size(request.spec);
        };
        let best = cluster.placeable().min_by(|a, b| {
            let (sa, sb) = (corrected_stress(a, now), corrected_stress(b, now));
            let overloaded = |s: f64| s >= STRESS_THRESHOLD;
            overloaded(sa)
                .cmp(&overloaded(sb))
                .then(sa.total_cmp(&sb))
                .then(a.id.cmp(&b.id))
        });
        match best {
            Some(bridge) => Placement::On(vec![(bridge.id, demand)]),
            None => Placement::Wait,
        }
    }

    fn scale(&mut self, cluster: &mut Cluster, now: Millis) {
        let bridges: Vec<f64> = cluster.placeable().map(Machine::cpu).collect();
        let stress = if bridges.is_empty() {
            0.0
        } else {
            bridges.iter().sum::<f64>() / bridges.len() as f64
        };
        self.stress_history.push_back(stress);
        while self.stress_history.len() > SCALE_DOWN_PERIODS.max(SCALE_UP_PERIODS) {
            self.stress_history.pop_front();
        }
        let in_grace = self.last_change.is_some_and(|at| now - at < GRACE);
        let launching = cluster.live().any(|m| m.is_booting());
        if in_grace || launching {
            return;
        }
        let count = cluster.live().filter(|m| !m.draining).count() as u32;
        let last = |n: usize| self.stress_history.iter().rev().take(n);
        let up = self.stress_history.len() >= SCALE_UP_PERIODS
            && last(SCALE_UP_PERIODS).all(|s| *s >= SCALE_UP_THRESHOLD);
        let down = self.stress_history.len() >= SCALE_DOWN_PERIODS
            && last(SCALE_DOWN_PERIODS).all(|s| *s < SCALE_DOWN_THRESHOLD);
        if (up || bridges.is_empty()) && count < self.max_nodes {
            cluster.spawn(&self.machine_type, None, now);
            self.last_change = Some(now);
        } else if down && count > self.min_nodes {
            for id in least_loaded(cluster, 1) {
                cluster.retire(id, now);
            }
            self.last_change = Some(now);
        }
    }
}
