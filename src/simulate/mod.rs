//! `ionctl simulate`: replays a day of sessions through production's
//! [`crate::placement::decide`] and [`crate::autoscale::plan`] on a virtual clock, beside the
//! placement and scaling policies of the systems people run today, and reports what each
//! costs and how long callers wait (docs/simulate.md).
//!
//! - [`clock`]: virtual time and the event queue;
//! - [`trace`]: sessions to replay and the JSON-lines trace format; [`synth`]: the seeded
//!   synthetic day;
//! - [`cluster`]: the simulated machines, sessions, load and billing;
//! - [`engine`]: the event loop of one run under one policy;
//! - [`policies`]: ours (production code) and the anchors';
//! - [`prices`]: hourly prices per machine type; [`report`]: the figures; [`chart`]: SVG
//!   and HTML.
//!
//! Everything here is pure and deterministic: the same trace and configuration give the
//! same report, byte for byte. Runs of different policies go on parallel threads, which
//! changes nothing but the time taken.

pub mod chart;
pub mod clock;
pub mod cluster;
pub mod engine;
pub mod policies;
pub mod prices;
pub mod report;
pub mod synth;
pub mod trace;

#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use clock::Millis;
use engine::Settings;
use policies::{PolicyConfig, PolicyKind};
use prices::PriceTable;
use report::{Report, SettingsSummary, TraceSummary};
use trace::Trace;

use crate::capacity::MachineType;

/// Everything a simulation needs beside the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub settings: Settings,
    pub policies: Vec<PolicyKind>,
    pub policy_config: PolicyConfig,
    pub prices: PriceTable,
    /// What the trace is, for the report.
    pub source: String,
    /// Threads to run policies on; 0 means one per available core.
    pub threads: usize,
}

/// Machines of a fixed fleet sized for the trace's peak at 60% CPU, as an operator sizing
/// for a known peak would.
pub fn fixed_fleet_for(trace: &Trace, machine_type: &str, units_per_vcpu: u32) -> u32 {
    let capacity = MachineType::by_name(machine_type).map_or(1, |m| m.capacity(units_per_vcpu));
    let peak = f64::from(trace.peak_demand());
    ((peak / (f64::from(capacity.max(1)) * 0.6)).ceil() as u32).max(1)
}

/// Runs every policy of `config` over `trace`. `progress(policy index, simulated time)` is
/// called from the worker threads now and then.
pub fn simulate(
    trace: &Trace,
    config: &Config,
    progress: &(dyn Fn(usize, Millis) + Sync),
) -> Report {
    let demand_unit_hours = report::demand_unit_hours(trace);
    let reference = &config.policy_config.fleet_machine_type;
    let reference_capacity = MachineType::by_name(reference)
        .map_or(0, |m| m.capacity(config.settings.cluster.units_per_vcpu));
    let results: Vec<Mutex<Option<report::PolicyReport>>> =
        config.policies.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let threads = if config.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        config.threads
    }
    .min(config.policies.len())
    .max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(kind) = config.policies.get(index) else {
                        break;
                    };
                    let mut policy = policies::build(*kind, &config.policy_config);
                    let summary = policy.summary();
                    let outcome = engine::run(trace, policy.as_mut(), &config.settings, &mut |t| {
                        progress(index, t)
                    });
                    let report = report::policy_report(
                        kind.name(),
                        summary,
                        outcome,
                        &config.prices,
                        demand_unit_hours,
                    );
                    // A worker that panicked poisons only its own slot, and the scope
                    // re-raises its panic anyway.
                    *results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
                }
            });
        }
    });
    let policies = results
        .into_iter()
        .filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    let span = trace.span() - trace.sessions.first().map_or(0, |s| s.at);
    let cluster = &config.settings.cluster;
    Report {
        schema: report::SCHEMA,
        trace: TraceSummary {
            source: config.source.clone(),
            sessions: trace.sessions.len(),
            span_hours: (span as f64 / clock::HOUR as f64 * 1000.0).round() / 1000.0,
            demand_unit_hours: (demand_unit_hours * 10.0).round() / 10.0,
            peak_demand_units: trace.peak_demand(),
            reference_machine_type: reference.clone(),
            reference_capacity_units: reference_capacity,
            fluid_bound_node_hours: if reference_capacity == 0 {
                0.0
            } else {
                (demand_unit_hours / f64::from(reference_capacity) * 1000.0).round() / 1000.0
            },
        },
        settings: SettingsSummary::new(
            cluster.boot_delay,
            cluster.load_lag,
            config.settings.patience,
            cluster.units_per_vcpu,
        ),
        policies,
    }
}

/// The defaults of `ionctl simulate`: boot 40 s (the seed's figure), reported load 10 s
/// behind, callers patient for 5 minutes, agents' hold of 5 minutes, placers rechecking
/// every 250 ms, Jicofo's 20 s window for recent joins.
pub fn default_settings(units_per_vcpu: u32) -> Settings {
    Settings {
        cluster: cluster::ClusterSettings {
            units_per_vcpu,
            boot_delay: 40 * clock::SECOND,
            boot_delay_by_type: Default::default(),
            load_lag: 10 * clock::SECOND,
            hold_ttl: 5 * clock::MINUTE,
            recent_window: policies::jitsi::RAMPUP,
        },
        patience: 5 * clock::MINUTE,
        recheck: clock::millis(crate::placer::RECHECK_INTERVAL),
        sample_every: engine::SAMPLE_EVERY,
        horizon: clock::DAY,
        skip_dominated: true,
    }
}
