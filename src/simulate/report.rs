//! The figures of a run, per policy, with the trace-wide ones they are measured against:
//! node-hours and cost; the fluid lower bound (every unit-second of demand packed onto
//! capacity with nothing idle, Σ demand·time / capacity) and each policy's ratio to it;
//! waits from request to placement; sessions refused, abandoned, dropped or overloaded;
//! scale events; and the nodes and load over time, for the charts.

use serde::Serialize;

use super::clock::{HOUR, MINUTE, Millis, seconds};
use super::cluster::SessionState;
use super::engine::{Outcome, Sample};
use super::prices::PriceTable;
use super::trace::Trace;

/// The JSON schema name; fields are only ever added.
pub const SCHEMA: &str = "ionctl.simulate/v1";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub trace: TraceSummary,
    pub settings: SettingsSummary,
    pub policies: Vec<PolicyReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    /// The file replayed, or how the synthetic day was drawn.
    pub source: String,
    pub sessions: usize,
    /// From the first arrival to the last end were every session placed at once.
    pub span_hours: f64,
    /// Σ demand·time of the sessions whose size their class admits.
    pub demand_unit_hours: f64,
    pub peak_demand_units: u32,
    /// The machine type the bound is counted in.
    pub reference_machine_type: String,
    pub reference_capacity_units: u32,
    /// `demand_unit_hours / reference_capacity_units`: node-hours no policy can go under
    /// without carrying more than capacity.
    pub fluid_bound_node_hours: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingsSummary {
    pub boot_delay_s: f64,
    pub load_lag_s: f64,
    pub patience_s: f64,
    pub units_per_vcpu: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    pub policy: String,
    pub summary: String,
    pub node_hours: f64,
    pub vcpu_hours: f64,
    pub cost_on_demand: f64,
    pub cost_spot: f64,
    /// Σ capacity·time of every machine, up or booting.
    pub capacity_unit_hours: f64,
    /// `capacity_unit_hours / demand_unit_hours`: 1 is the fluid bound.
    pub ratio_to_bound: f64,
    pub placed: u32,
    pub refused: u32,
    /// Waited longer than the patience and gave up.
    pub abandoned: u32,
    /// On a machine deleted under them.
    pub dropped: u32,
    /// Sessions whose machine carried more than their class's headroom at some instant.
    pub overloaded: u32,
    pub wait_p50_s: f64,
    pub wait_p95_s: f64,
    pub wait_p99_s: f64,
    pub wait_max_s: f64,
    /// Unit-hours of demand above machines' full capacity.
    pub over_capacity_unit_hours: f64,
    pub spawns: u32,
    pub drains: u32,
    pub deletes: u32,
    pub peak_nodes: u32,
    /// The first reason a refusal gave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Every 15 minutes.
    pub series: Vec<Point>,
    #[serde(skip)]
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    pub hour: f64,
    pub nodes: u32,
    pub load_units: u64,
    pub capacity_units: u64,
}

/// Rounds to `places` decimals, so that JSON does not carry float noise.
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// The nearest-rank `q` quantile of sorted `values`, in seconds.
fn quantile(sorted: &[Millis], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    seconds(sorted[rank - 1])
}

/// Σ demand·time of the trace, in unit-hours, of the sessions whose size fits their class.
pub fn demand_unit_hours(trace: &Trace) -> f64 {
    trace
        .sessions
        .iter()
        .filter(|s| s.declared_demand().is_some())
        .map(|s| s.demand_unit_ms())
        .sum::<f64>()
        / HOUR as f64
}

pub fn policy_report(
    name: &str,
    summary: String,
    mut outcome: Outcome,
    prices: &PriceTable,
    demand_unit_hours: f64,
) -> PolicyReport {
    let end = outcome.end;
    let mut node_hours = 0.0;
    let mut vcpu_hours = 0.0;
    let mut capacity_unit_hours = 0.0;
    let mut cost_on_demand = 0.0;
    let mut cost_spot = 0.0;
    let mut over_unit_ms = 0.0;
    for machine in &outcome.cluster.machines {
        let hours = (machine.gone_at.unwrap_or(end) - machine.spawned_at) as f64 / HOUR as f64;
        node_hours += hours;
        vcpu_hours += hours * f64::from(machine.vcpus);
        capacity_unit_hours += hours * f64::from(machine.capacity);
        let price = prices.of(machine.machine_type);
        cost_on_demand += hours * price.on_demand;
        cost_spot += hours * price.spot;
        over_unit_ms += machine.over_capacity_unit_ms;
    }
    let overloaded = outcome
        .cluster
        .sessions
        .iter()
        .filter(|s| s.overloaded)
        .count() as u32;
    let placed = outcome
        .cluster
        .sessions
        .iter()
        .filter(|s| {
            matches!(
                s.state,
                SessionState::Placed { .. } | SessionState::Ended | SessionState::Dropped
            )
        })
        .count() as u32;
    outcome.waits.sort_unstable();
    let counters = outcome.cluster.counters;
    let series = outcome
        .samples
        .iter()
        .filter(|s| s.at % (15 * MINUTE) == 0)
        .map(|s| Point {
            hour: round(s.at as f64 / HOUR as f64, 3),
            nodes: s.nodes,
            load_units: s.load,
            capacity_units: s.capacity,
        })
        .collect();
    let ratio = if demand_unit_hours > 0.0 {
        capacity_unit_hours / demand_unit_hours
    } else {
        0.0
    };
    PolicyReport {
        policy: name.to_owned(),
        summary,
        node_hours: round(node_hours, 3),
        vcpu_hours: round(vcpu_hours, 3),
        cost_on_demand: round(cost_on_demand, 2),
        cost_spot: round(cost_spot, 2),
        capacity_unit_hours: round(capacity_unit_hours, 1),
        ratio_to_bound: round(ratio, 3),
        placed,
        refused: outcome.refused,
        abandoned: outcome.abandoned,
        dropped: counters.dropped,
        overloaded,
        wait_p50_s: round(quantile(&outcome.waits, 0.50), 3),
        wait_p95_s: round(quantile(&outcome.waits, 0.95), 3),
        wait_p99_s: round(quantile(&outcome.waits, 0.99), 3),
        wait_max_s: round(outcome.waits.last().map_or(0.0, |w| seconds(*w)), 3),
        over_capacity_unit_hours: round(over_unit_ms / HOUR as f64, 3),
        spawns: counters.spawns,
        drains: counters.drains,
        deletes: counters.deletes,
        peak_nodes: outcome.samples.iter().map(|s| s.nodes).max().unwrap_or(0),
        refusal: outcome.refusal,
        series,
        samples: outcome.samples,
    }
}

impl SettingsSummary {
    pub fn new(
        boot_delay: Millis,
        load_lag: Millis,
        patience: Millis,
        units_per_vcpu: u32,
    ) -> Self {
        Self {
            boot_delay_s: seconds(boot_delay),
            load_lag_s: seconds(load_lag),
            patience_s: seconds(patience),
            units_per_vcpu,
        }
    }
}

/// Seconds as the table shows them: "0", "0.25", "41", "3m20".
pub fn short_seconds(s: f64) -> String {
    if s >= 60.0 {
        let whole = s.round() as u64;
        format!("{}m{:02}", whole / 60, whole % 60)
    } else if s >= 10.0 || s == s.trunc() {
        format!("{s:.0}")
    } else {
        format!("{s:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::clock::SECOND;

    #[test]
    fn quantiles_are_nearest_rank() {
        let waits: Vec<Millis> = (1..=100).map(|s| s * SECOND).collect();
        assert_eq!(quantile(&waits, 0.5), 50.0);
        assert_eq!(quantile(&waits, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(short_seconds(200.0), "3m20");
        assert_eq!(short_seconds(0.25), "0.25");
        assert_eq!(short_seconds(41.2), "41");
    }
}
