//! `ionctl autoscale`: the leader-elected autoscaler loop. Policy comes from flags over the
//! `[autoscale]` config table over defaults; every action is printed as one line on stdout
//! with its reason and outcome, and logged through tracing.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use clap::Args;

use super::output::write_stdout;
use super::providers::{self, CreateFlags, ProviderFlags, ProviderKind};
use super::{CliError, Context};
use crate::autoscale::run::{Report, Settings};
use crate::capacity::MachineType;

#[derive(Debug, Args)]
pub struct AutoscaleArgs {
    /// Where to create instances.
    #[arg(long, value_enum, env = "IONCTL_PROVIDER", default_value_t = ProviderKind::Gce)]
    pub provider: ProviderKind,
    /// Keep at least this many nodes [config: [autoscale] min_nodes; default 0].
    #[arg(long, value_name = "N")]
    pub min_nodes: Option<u32>,
    /// Never run more than this many nodes and instances in flight [config: max_nodes; default 10].
    #[arg(long, value_name = "N")]
    pub max_nodes: Option<u32>,
    /// Keep N ready idle nodes of TYPE for bursts, e.g. n1-standard-1=1; repeatable
    /// [config: [autoscale.warm_pool]].
    #[arg(long, value_name = "TYPE=N", value_parser = parse_warm)]
    pub warm_pool: Vec<(String, u32)>,
    /// Drain a node idle this long, beyond min and the warm pool [config: idle_timeout; default 5m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Delete and replace an instance whose agent has not registered by then
    /// [config: boot_timeout; default 10m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub boot_timeout: Option<Duration>,
    /// Type of new shared instances [config: pack_machine_type; default n2-highcpu-4].
    #[arg(long, value_name = "TYPE")]
    pub pack_machine_type: Option<String>,
    /// After an instance spawned for a demand registers, wait this long for the demand to take
    /// it before spawning another for it [config: spawn_grace; default 1m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub spawn_grace: Option<Duration>,
    /// Spawn at most this many instances in any minute [config: max_spawns_per_minute;
    /// default 10].
    #[arg(long, value_name = "N")]
    pub max_spawns_per_minute: Option<u32>,
    /// Never drain a node younger than this [config: min_lifetime; default 2m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub min_lifetime: Option<Duration>,
    /// Time between ticks.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// TTL of the election lease: a dead leader's successor takes over within it.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// How long held instances stay held at most [default: the agent's, 5m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub hold_ttl: Option<Duration>,
    /// This replica's name in the election [default: ionctl-<pid>].
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,
    /// Run one tick once leader, then resign and exit.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub provider_flags: ProviderFlags,
    #[command(flatten)]
    pub create_flags: CreateFlags,
}

fn parse_warm(text: &str) -> Result<(String, u32), String> {
    let (machine_type, count) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not TYPE=N, e.g. n1-standard-1=1"))?;
    let count = count
        .parse()
        .map_err(|_| format!("{count:?} is not a count in {text:?}"))?;
    Ok((machine_type.to_owned(), count))
}

fn stamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn line(text: String) {
    // A closed stdout is not the loop's concern; the action has been logged.
    let _ = write_stdout(format!("{} {text}\n", stamp()).as_bytes());
}

pub async fn run(context: &Context, args: AutoscaleArgs) -> Result<(), CliError> {
    let mut policy = context.autoscale.clone();
    if let Some(n) = args.min_nodes {
        policy.min_nodes = n;
    }
    if let Some(n) = args.max_nodes {
        policy.max_nodes = n;
    }
    if !args.warm_pool.is_empty() {
        policy.warm_pool = args.warm_pool.iter().cloned().collect();
    }
    if let Some(t) = args.idle_timeout {
        policy.idle_timeout = t;
    }
    if let Some(t) = args.boot_timeout {
        policy.boot_timeout = t;
    }
    if let Some(t) = &args.pack_machine_type {
        policy.pack_machine_type = t.clone();
    }
    if let Some(t) = args.spawn_grace {
        policy.spawn_grace = t;
    }
    if let Some(n) = args.max_spawns_per_minute {
        policy.max_spawns_per_minute = n;
    }
    if let Some(t) = args.min_lifetime {
        policy.min_lifetime = t;
    }
    policy.units_per_vcpu = context.policy.units_per_vcpu;
    policy.load = context.policy.load_rules();
    if policy.max_spawns_per_minute == 0 {
        return Err(CliError::usage(anyhow!(
            "--max-spawns-per-minute must be at least 1; to stop spawning, set --max-nodes"
        )));
    }
    for machine_type in policy
        .warm_pool
        .keys()
        .chain(std::iter::once(&policy.pack_machine_type))
    {
        if MachineType::by_name(machine_type).is_none() {
            return Err(CliError::usage(anyhow!(
                "unknown machine type {machine_type:?}; known: {}",
                crate::capacity::known_types()
            )));
        }
    }
    if policy.min_nodes > policy.max_nodes {
        return Err(CliError::usage(anyhow!(
            "--min-nodes {} is above --max-nodes {}",
            policy.min_nodes,
            policy.max_nodes
        )));
    }
    let provider = providers::build(
        args.provider,
        context,
        &args.provider_flags,
        Some(&args.create_flags),
    )?;
    let store = context.store().await?;
    let settings = Settings {
        policy,
        interval: args.interval,
        lease_ttl: args.lease_ttl,
        once: args.once,
        identity: args
            .identity
            .clone()
            .unwrap_or_else(|| format!("ionctl-{}", std::process::id())),
        hold_ttl: args.hold_ttl,
    };
    let report: Arc<dyn Fn(Report) + Send + Sync> = Arc::new(|report| match report {
        Report::Campaigning { identity } => {
            tracing::info!(%identity, "campaigning for autoscaler leadership");
            line(format!("campaign {identity}: waiting for leadership"));
        }
        Report::Leader { identity } => {
            tracing::info!(%identity, "autoscaler leader");
            line(format!("leader {identity}"));
        }
        Report::Acted { action, outcome } => match *outcome {
            Ok(made) => line(format!("{action} -> ok {}", made.name())),
            Err(error) => line(format!(
                "{action} -> failed: {}",
                crate::text::error_line(&error)
            )),
        },
        Report::Registered { instance } => line(format!("ready {instance}: its agent registered")),
        Report::Waiting { sid, node, why } => {
            line(format!("waiting {sid} on {node}, spawned for it: {why}"));
        }
        Report::Resigned => line("resigned".to_owned()),
    });
    crate::autoscale::run::run(store, provider, settings, report, super::serve::shutdown())
        .await
        .map_err(|e| CliError::other(anyhow::Error::new(e).context("autoscaler")))
}
