//! `ionctl simulate`: replays a trace (a file, or a seeded synthetic day) through
//! production's placement and autoscaler and through the anchors' policies, and prints what
//! each costs and how long callers wait: a table, `-o json`, and charts with `--svg` or
//! `--html`. Needs no cluster: nothing here reads etcd.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::CliError;
use super::output::{OutputArgs, OutputFormat, print_json, print_table, table, write_stdout};
use super::values::StrategyArg;
use crate::capacity::{MachineType, known_types};
use crate::simulate::clock::{Millis, millis};
use crate::simulate::policies::ours::OursConfig;
use crate::simulate::policies::{PolicyConfig, PolicyKind};
use crate::simulate::prices::PriceTable;
use crate::simulate::report::{Report, short_seconds};
use crate::simulate::synth::{SynthConfig, generate};
use crate::simulate::trace::{Trace, parse, to_jsonl};
use crate::simulate::{Config, chart, default_settings, fixed_fleet_for, simulate};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Replay this trace (JSON lines: t, sid, class, size, duration, participants; see
    /// docs/simulate.md) instead of a synthetic day.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["sessions", "hours"])]
    pub trace: Option<PathBuf>,
    /// Sessions of the synthetic day.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub sessions: u32,
    /// Seed of the synthetic day and of the policies' random choices (two-choice); with
    /// `--trace`, of the random choices only.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Hours of synthetic arrivals.
    #[arg(long, value_name = "H", default_value_t = 24)]
    pub hours: u32,
    /// Write the trace replayed (synthetic or read) to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub write_trace: Option<PathBuf>,
    /// Policies to compare, comma-separated: ours, seed, livekit-lowest, livekit-twochoice,
    /// livekit-hpa, jitsi, gce-mig [default: all].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub policies: Vec<String>,
    /// Time from asking for a machine to its agent registering.
    #[arg(long, value_name = "DURATION", default_value = "40s", value_parser = humantime::parse_duration)]
    pub boot_delay: Duration,
    /// Boot delay of one machine type, e.g. n2-highcpu-32=90s; repeatable.
    #[arg(long, value_name = "TYPE=DURATION", value_parser = parse_type_duration)]
    pub boot_delay_for: Vec<(String, Duration)>,
    /// How far reported load trails the load carried.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub load_lag: Duration,
    /// A caller gives up after waiting this long (counted as refused).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub patience: Duration,
    /// Hourly prices (TOML: ["TYPE"] on_demand = $, spot = $) over the built-in table.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Capacity units per vCPU.
    #[arg(long, value_name = "N", default_value_t = crate::capacity::DEFAULT_UNITS_PER_VCPU)]
    pub units_per_vcpu: u32,
    /// Our placement strategy.
    #[arg(long, value_enum, default_value_t = StrategyArg::Binpack)]
    pub strategy: StrategyArg,
    /// Our warm pool, TYPE=N, repeatable; `none` for no warm pool [default: n2-highcpu-4=1].
    #[arg(long, value_name = "TYPE=N")]
    pub warm_pool: Vec<String>,
    /// Our idle timeout before a node is drained.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Type of our new shared instances.
    #[arg(long, value_name = "TYPE", default_value = "n2-highcpu-4")]
    pub pack_machine_type: String,
    /// Our autoscaler's cap on spawns per minute.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_spawns_per_minute: u32,
    /// The machine type of the other policies' fleets (and of the fluid bound).
    #[arg(long, value_name = "TYPE", default_value = "n2-highcpu-4")]
    pub machine_type: String,
    /// Machines of the fixed LiveKit fleets [default: the trace's peak at 60% CPU].
    #[arg(long, value_name = "N")]
    pub fleet: Option<u32>,
    /// The fewest machines an autoscaled anchor fleet keeps.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_nodes: u32,
    /// The most machines any policy runs.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub max_nodes: u32,
    /// Threads to run policies on [default: one per core].
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Write charts of nodes and load over the day, per policy, as SVG.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Write the table and the charts as one HTML page.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_type_duration(text: &str) -> Result<(String, Duration), String> {
    let (machine_type, duration) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not TYPE=DURATION, e.g. n2-highcpu-32=90s"))?;
    let duration = humantime::parse_duration(duration)
        .map_err(|e| format!("{duration:?} in {text:?}: {e}"))?;
    Ok((machine_type.to_owned(), duration))
}

fn check_type(flag: &str, machine_type: &str) -> Result<(), CliError> {
    if MachineType::by_name(machine_type).is_none() {
        return Err(CliError::usage(anyhow!(
            "{flag}: unknown machine type {machine_type:?}; known: {}",
            known_types()
        )));
    }
    Ok(())
}

fn warm_pool(args: &SimulateArgs) -> Result<Option<Vec<(String, u32)>>, CliError> {
    if args.warm_pool.is_empty() {
        return Ok(None);
    }
    if args.warm_pool.iter().any(|w| w == "none") {
        return Ok(Some(Vec::new()));
    }
    let mut pool = Vec::new();
    for entry in &args.warm_pool {
        let (machine_type, count) = entry.split_once('=').ok_or_else(|| {
            CliError::usage(anyhow!(
                "--warm-pool {entry:?} is not TYPE=N, e.g. n2-highcpu-4=1, or none"
            ))
        })?;
        check_type("--warm-pool", machine_type)?;
        let count = count.parse().map_err(|_| {
            CliError::usage(anyhow!("--warm-pool {entry:?}: {count:?} is not a count"))
        })?;
        pool.push((machine_type.to_owned(), count));
    }
    Ok(Some(pool))
}

fn read_trace(args: &SimulateArgs) -> Result<(Trace, String), CliError> {
    match &args.trace {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--trace {}", path.display()))
                .map_err(CliError::usage)?;
            let trace = parse(&text)
                .map_err(|e| {
                    anyhow!(
                        "--trace {}: {e}; fix the line (format: docs/simulate.md)",
                        path.display()
                    )
                })
                .map_err(CliError::usage)?;
            if trace.sessions.is_empty() {
                return Err(CliError::usage(anyhow!(
                    "--trace {}: no sessions in it",
                    path.display()
                )));
            }
            Ok((trace, path.display().to_string()))
        }
        None => {
            let config = SynthConfig {
                sessions: args.sessions,
                seed: args.seed,
                hours: args.hours,
            };
            let source = format!(
                "a synthetic day: --sessions {} --seed {} --hours {}",
                args.sessions, args.seed, args.hours
            );
            Ok((generate(&config), source))
        }
    }
}

fn config(args: &SimulateArgs, trace: &Trace, source: String) -> Result<Config, CliError> {
    check_type("--machine-type", &args.machine_type)?;
    check_type("--pack-machine-type", &args.pack_machine_type)?;
    for (machine_type, _) in &args.boot_delay_for {
        check_type("--boot-delay-for", machine_type)?;
    }
    if args.units_per_vcpu == 0 || args.max_spawns_per_minute == 0 {
        return Err(CliError::usage(anyhow!(
            "--units-per-vcpu and --max-spawns-per-minute must be at least 1"
        )));
    }
    let policies = if args.policies.is_empty() {
        PolicyKind::ALL.to_vec()
    } else {
        let mut kinds = Vec::new();
        for name in &args.policies {
            let kind = PolicyKind::by_name(name.trim()).ok_or_else(|| {
                CliError::usage(anyhow!(
                    "--policies: unknown policy {name:?}; known: {}",
                    PolicyKind::names()
                ))
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds
    };
    let prices = match &args.prices {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--prices {}", path.display()))
                .map_err(CliError::usage)?;
            PriceTable::with_overrides(&text)
                .with_context(|| format!("--prices {}", path.display()))
                .map_err(CliError::usage)?
        }
        None => PriceTable::default(),
    };
    let mut ours = OursConfig::production();
    ours.placement.units_per_vcpu = args.units_per_vcpu;
    ours.autoscale.units_per_vcpu = args.units_per_vcpu;
    ours.strategy = args.strategy.into();
    if let Some(pool) = warm_pool(args)? {
        ours.autoscale.warm_pool = pool.into_iter().collect();
    }
    ours.autoscale.idle_timeout = args.idle_timeout;
    ours.autoscale.pack_machine_type = args.pack_machine_type.clone();
    ours.autoscale.max_spawns_per_minute = args.max_spawns_per_minute;
    ours.autoscale.max_nodes = args.max_nodes;
    let mut settings = default_settings(args.units_per_vcpu);
    settings.cluster.boot_delay = millis(args.boot_delay);
    settings.cluster.boot_delay_by_type = args
        .boot_delay_for
        .iter()
        .map(|(t, d)| (t.clone(), millis(*d)))
        .collect();
    settings.cluster.load_lag = millis(args.load_lag);
    settings.patience = millis(args.patience);
    let fleet = args.fleet.unwrap_or_else(|| {
        fixed_fleet_for(trace, &args.machine_type, args.units_per_vcpu).min(args.max_nodes)
    });
    Ok(Config {
        settings,
        policies,
        policy_config: PolicyConfig {
            ours,
            fleet_machine_type: args.machine_type.clone(),
            fixed_fleet: fleet,
            min_nodes: args.min_nodes,
            max_nodes: args.max_nodes,
            seed: args.seed,
        },
        prices,
        source,
        threads: args.threads,
    })
}

fn write_file(flag: &str, path: &PathBuf, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text)
        .with_context(|| format!("{flag} {}: cannot write it", path.display()))
        .map_err(CliError::other)
}

pub fn run(args: SimulateArgs) -> Result<(), CliError> {
    let (trace, source) = read_trace(&args)?;
    let config = config(&args, &trace, source)?;
    if let Some(path) = &args.write_trace {
        write_file("--write-trace", path, &to_jsonl(&trace))?;
    }
    let horizon: Millis = config.settings.horizon.max(trace.span());
    let positions: Vec<AtomicU64> = config.policies.iter().map(|_| AtomicU64::new(0)).collect();
    let bar = ProgressBar::with_draw_target(
        Some(horizon / 1_000 * config.policies.len() as u64),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} simulating [{bar:30}] {percent}% {elapsed} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!(
        "{} sessions × {} policies",
        trace.sessions.len(),
        config.policies.len()
    ));
    let report = simulate(&trace, &config, &|index, now| {
        positions[index].store(now.min(horizon) / 1_000, Ordering::Relaxed);
        bar.set_position(positions.iter().map(|p| p.load(Ordering::Relaxed)).sum());
    });
    bar.finish_and_clear();
    if let Some(path) = &args.svg {
        let svg = chart::svg(&report).map_err(|e| CliError::other(anyhow!("--svg: {e}")))?;
        write_file("--svg", path, &svg)?;
    }
    if let Some(path) = &args.html {
        let html = chart::html(&report).map_err(|e| CliError::other(anyhow!("--html: {e}")))?;
        write_file("--html", path, &html)?;
    }
    match args.output.output {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Table => print_report(&report),
    }
}

fn print_report(report: &Report) -> Result<(), CliError> {
    let mut out = table(&[
        "policy",
        "node-h",
        "× bound",
        "cost $",
        "spot $",
        "wait p50",
        "p95",
        "p99",
        "max",
        "refused",
        "overloaded",
        "dropped",
        "spawns",
        "deletes",
    ]);
    for p in &report.policies {
        out.add_row(vec![
            p.policy.clone(),
            format!("{:.1}", p.node_hours),
            format!("{:.2}", p.ratio_to_bound),
            format!("{:.2}", p.cost_on_demand),
            format!("{:.2}", p.cost_spot),
            short_seconds(p.wait_p50_s),
            short_seconds(p.wait_p95_s),
            short_seconds(p.wait_p99_s),
            short_seconds(p.wait_max_s),
            (p.refused + p.abandoned).to_string(),
            p.overloaded.to_string(),
            p.dropped.to_string(),
            p.spawns.to_string(),
            p.deletes.to_string(),
        ]);
    }
    print_table(&mut out)?;
    let t = &report.trace;
    let mut notes = format!(
        "\n{} sessions ({}); demand {:.0} unit-hours, peak {} units; fluid bound {:.1} \
         node-hours of {} ({} units each). Waits in seconds (1m06: minutes and seconds).\n",
        t.sessions,
        t.source,
        t.demand_unit_hours,
        t.peak_demand_units,
        t.fluid_bound_node_hours,
        t.reference_machine_type,
        t.reference_capacity_units
    );
    for p in &report.policies {
        notes.push_str(&format!("  {:<18} {}\n", p.policy, p.summary));
    }
    write_stdout(notes.as_bytes())
}
