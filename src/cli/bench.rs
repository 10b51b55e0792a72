//! `ionctl bench place`: measures placements/s and latency against raw etcd transactions/s
//! in the same run (see [`crate::bench`]), under a throwaway key prefix. `ionctl bench fleet`:
//! keeps a synthetic fleet alive under its own prefix (see [`crate::fleet`]) for other
//! commands to be measured against.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::output::{OutputArgs, OutputFormat, print_json, print_table, table};
use super::values::ClassArg;
use super::{CliError, Context};
use crate::bench::{BenchError, BenchOptions, run};
use crate::fleet::{Fleet, FleetOptions};
use crate::placement::{Role, Strategy};
use crate::placer::checked_request;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Placements/s with p50/p99 latency against raw etcd txn/s, at several concurrencies.
    Place(PlaceBenchArgs),
    /// Keeps N synthetic nodes alive under a prefix of their own (leases, stats writes at the
    /// agents' budget, a few sessions each), so other commands can be measured against an
    /// etcd of full size; removes them when it ends and reports etcd's write rate.
    Fleet(FleetArgs),
    /// Times production's pure `decide` and `plan` on a synthetic cluster of each size, in
    /// process (p50/p99 per call).
    Decide(DecideArgs),
    /// The cost floor of forwarding: SRTP-protects and sends (sendmmsg) the packets of a load
    /// test to loopback receivers and reports the sending thread's CPU per packet, to set the
    /// agent's figure against in the same run (scripts/bench-floor).
    Floor(FloorArgs),
}

#[derive(Debug, Args)]
pub struct FloorArgs {
    /// Loopback receivers, one stream each (a load test's subscribers).
    #[arg(long, default_value_t = 200)]
    pub receivers: u32,
    /// Packets per second to all receivers together.
    #[arg(long, value_name = "PPS", default_value_t = 20_000.0)]
    pub packets_per_second: f64,
    /// RTP payload bytes per packet.
    #[arg(long, value_name = "BYTES", default_value_t = 1_000)]
    pub payload_bytes: usize,
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Packets per sendmmsg call at most.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// SRTP protection profile. The agent's str0m prefers AES-256-GCM, and the load
    /// generator's webrtc-rs offers it: a profile of the agent shows that cipher sealing.
    #[arg(long, value_enum, default_value = "aes256-gcm")]
    pub srtp: crate::bench::floor::seal::Profile,
    /// Pin the sending thread to this CPU (as the agent is pinned by scripts/bench-loadtest).
    #[arg(long, value_name = "CPU")]
    pub sender_cpu: Option<usize>,
    /// Pin the receiving thread to this CPU.
    #[arg(long, value_name = "CPU")]
    pub receiver_cpu: Option<usize>,
    /// How the receivers read: `poll` (no receiver waits on its socket, so a send wakes
    /// nothing) or `wait` (each waits in epoll, as the load generator's peers do; on
    /// loopback the sender pays each wake-up).
    #[arg(long, value_enum, default_value = "poll")]
    pub receive: crate::bench::floor::ReceiveMode,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Cluster sizes in nodes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub nodes: Vec<u32>,
    /// Meetings of 6 on each used node, at most (a quarter of the nodes are empty).
    #[arg(long, default_value_t = 4)]
    pub sessions_per_node: u32,
    /// Decisions timed per size.
    #[arg(long, default_value_t = 2000)]
    pub decisions: u32,
    /// Autoscaler plans timed per size.
    #[arg(long, default_value_t = 50)]
    pub plans: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Synthetic nodes to register.
    #[arg(long, default_value_t = 1000)]
    pub nodes: u32,
    /// Meetings of 6 each node carries.
    #[arg(long, default_value_t = 4)]
    pub sessions_per_node: u32,
    /// Share of the nodes whose load moves on every stats sample (they write as often as the
    /// budget allows); the rest write on the heartbeat.
    #[arg(long, default_value_t = 0.1)]
    pub busy_fraction: f64,
    /// Stop after this long (e.g. `2m`); without it, run until interrupted.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// The key prefix to register under (default: the cluster prefix with `-fleet-<uuid>`).
    /// Refused if it is the cluster's own prefix.
    #[arg(long, value_name = "PREFIX")]
    pub fleet_prefix: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct PlaceBenchArgs {
    /// Synthetic node records to place onto.
    #[arg(long, default_value_t = 1000)]
    pub nodes: u32,
    /// Placements (and raw transactions) per concurrency level.
    #[arg(long, default_value_t = 2000)]
    pub operations: u32,
    /// Class of every placed session.
    #[arg(long, value_enum, default_value_t = ClassArg::Group)]
    pub class: ClassArg,
    /// Size of every placed session; small ones put the most reservations on one node.
    #[arg(long, default_value_t = 2)]
    pub size: u32,
    /// Concurrent placers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<u32>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run_bench(context: &Context, args: BenchArgs) -> Result<(), CliError> {
    match args.what {
        BenchWhat::Place(args) => bench_place(context, args).await,
        BenchWhat::Fleet(args) => bench_fleet(context, args).await,
        BenchWhat::Decide(args) => bench_decide(&args),
        BenchWhat::Floor(args) => bench_floor(&args),
    }
}

fn bench_floor(args: &FloorArgs) -> Result<(), CliError> {
    use crate::bench::floor::{FloorOptions, run};
    let options = FloorOptions {
        receivers: args.receivers,
        packets_per_second: args.packets_per_second,
        payload_bytes: args.payload_bytes,
        duration: args.duration,
        batch: args.batch,
        profile: args.srtp,
        sender_cpu: args.sender_cpu,
        receiver_cpu: args.receiver_cpu,
        receive: args.receive,
    };
    let report = run(&options).map_err(floor_exit)?;
    match args.output.output {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Table => {
            let mut out = table(&[
                "srtp",
                "receive",
                "receivers",
                "pkt/s",
                "payload",
                "sent",
                "received",
                "sendmmsg",
                "cpu s",
                "us/pkt",
                "pkt/core-s",
            ]);
            out.add_row(vec![
                report.profile.name().to_owned(),
                report.receive.name().to_owned(),
                report.receivers.to_string(),
                format!("{:.0}", report.packets_sent as f64 / report.seconds),
                format!("{} B", report.payload_bytes),
                report.packets_sent.to_string(),
                report.packets_received.to_string(),
                report.sendmmsg_calls.to_string(),
                format!("{:.3}", report.sender_cpu_seconds),
                format!("{:.3}", report.cpu_us_per_packet),
                format!("{:.0}", report.packets_per_core_second),
            ]);
            print_table(&mut out)
        }
    }
}

fn bench_decide(args: &DecideArgs) -> Result<(), CliError> {
    if let Some(bad) = args.nodes.iter().find(|n| **n == 0 || **n > 100_000) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--nodes {bad} is out of range: use 1 to 100000"
        )));
    }
    if args.decisions == 0 {
        return Err(CliError::usage(anyhow::anyhow!(
            "--decisions 0 measures nothing: use 1 or more"
        )));
    }
    let results: Vec<_> = args
        .nodes
        .iter()
        .map(|&nodes| {
            let _ = writeln!(std::io::stderr(), "bench: decide and plan on {nodes} nodes");
            crate::bench::decide::run(nodes, args.sessions_per_node, args.decisions, args.plans)
        })
        .collect();
    match args.output.output {
        OutputFormat::Json => print_json(&results),
        OutputFormat::Table => {
            let mut out = table(&[
                "nodes",
                "sessions",
                "decide p50",
                "decide p99",
                "decide max",
                "plan p50",
                "plan p99",
            ]);
            let ms = |us: f64| format!("{:.3} ms", us / 1000.0);
            for r in &results {
                out.add_row(vec![
                    r.nodes.to_string(),
                    r.sessions.to_string(),
                    ms(r.decide_p50_us),
                    ms(r.decide_p99_us),
                    ms(r.decide_max_us),
                    ms(r.plan_p50_us),
                    ms(r.plan_p99_us),
                ]);
            }
            print_table(&mut out)
        }
    }
}

async fn bench_fleet(context: &Context, args: FleetArgs) -> Result<(), CliError> {
    if !(0.0..=1.0).contains(&args.busy_fraction) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--busy-fraction {} is not a share: use a number from 0 to 1",
            args.busy_fraction
        )));
    }
    if args.nodes == 0 || args.nodes > 100_000 {
        return Err(CliError::usage(anyhow::anyhow!(
            "--nodes {} is out of range: use 1 to 100000",
            args.nodes
        )));
    }
    let mut etcd = context.etcd.clone();
    let cluster_prefix = format!("{}/", etcd.prefix.trim_end_matches('/'));
    etcd.prefix = match args.fleet_prefix {
        Some(prefix) if format!("{}/", prefix.trim_end_matches('/')) == cluster_prefix => {
            return Err(CliError::usage(anyhow::anyhow!(
                "--fleet-prefix {prefix} is the cluster's own prefix; the fleet removes \
                 everything it wrote, so give it a prefix of its own"
            )));
        }
        Some(prefix) => prefix,
        None => format!(
            "{}-fleet-{}/",
            etcd.prefix.trim_end_matches('/'),
            uuid::Uuid::new_v4().simple()
        ),
    };
    let store = Store::connect(&etcd).await?;
    let options = FleetOptions {
        nodes: args.nodes,
        sessions_per_node: args.sessions_per_node,
        busy_fraction: args.busy_fraction,
        ..FleetOptions::default()
    };
    let total = args.nodes;
    let fleet = Fleet::start(&store, options, |done| {
        if done == total || done % 1000 == 0 {
            let _ = writeln!(
                std::io::stderr(),
                "fleet: {done} of {total} nodes registered"
            );
        }
    })
    .await?;
    let prefix = store.keys().prefix();
    let _ = writeln!(
        std::io::stderr(),
        "fleet: {total} nodes up under {prefix}; try `ionctl nodes --prefix {prefix}`{}",
        if args.duration.is_some() {
            ""
        } else {
            "; Ctrl-C stops it"
        }
    );
    match args.duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    let _ = writeln!(std::io::stderr(), "fleet: removing its keys");
    let report = fleet.stop().await?;
    match args.output.output {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Table => {
            let mut out = table(&[
                "nodes",
                "sessions",
                "seconds",
                "stats writes",
                "stats writes/s per node",
                "etcd writes/s per node",
                "re-registered",
                "etcd db size",
            ]);
            out.add_row(vec![
                report.nodes.to_string(),
                report.sessions.to_string(),
                format!("{:.0}", report.seconds),
                report.stats_writes.to_string(),
                format!("{:.3}", report.stats_writes_per_sec_per_node),
                format!("{:.3}", report.writes_per_sec_per_node),
                report.reregistrations.to_string(),
                format!("{:.1} MB", report.db_size_bytes as f64 / 1e6),
            ]);
            print_table(&mut out)
        }
    }
}

async fn bench_place(context: &Context, args: PlaceBenchArgs) -> Result<(), CliError> {
    checked_request(
        None,
        args.class.into(),
        args.size,
        Strategy::Binpack,
        Role::Publisher,
    )
    .map_err(CliError::usage)?;
    // Everything goes under a prefix of its own, deleted at the end, so a real cluster under
    // the configured prefix is never touched.
    let mut etcd = context.etcd.clone();
    etcd.prefix = format!(
        "{}-bench-{}/",
        etcd.prefix.trim_end_matches('/'),
        uuid::Uuid::new_v4().simple()
    );
    let store = Store::connect(&etcd).await?;
    let options = BenchOptions {
        nodes: args.nodes,
        operations: args.operations,
        concurrency: args.concurrency,
        class: args.class.into(),
        size: args.size,
    };
    let results = run(&store, &options, |step| {
        let _ = writeln!(std::io::stderr(), "bench: {step}");
    })
    .await
    .map_err(|e| match e {
        BenchError::Store(e) => e.into(),
        BenchError::Place(e) => e.into(),
        other => CliError::other(other),
    })?;
    match args.output.output {
        OutputFormat::Json => print_json(&results),
        OutputFormat::Table => {
            let mut out = table(&[
                "placers",
                "raw txn/s",
                "raw p50",
                "raw p99",
                "placements/s",
                "place p50",
                "place p99",
                "ratio",
            ]);
            for r in &results {
                out.add_row(vec![
                    r.concurrency.to_string(),
                    format!("{:.0}", r.raw_txn_per_sec),
                    format!("{:.2} ms", r.raw_p50_ms),
                    format!("{:.2} ms", r.raw_p99_ms),
                    format!("{:.0}", r.placements_per_sec),
                    format!("{:.2} ms", r.place_p50_ms),
                    format!("{:.2} ms", r.place_p99_ms),
                    format!("{:.2}", r.ratio),
                ]);
            }
            print_table(&mut out)
        }
    }
}

/// The floor's options or the CPUs named are the user's to fix (exit 2); anything else,
/// the bench's own panics included, is a failure (exit 1).
fn floor_exit(error: crate::bench::floor::FloorError) -> CliError {
    use crate::bench::floor::FloorError;
    match error {
        FloorError::Options(_) | FloorError::Pin { .. } => CliError::usage(error),
        other => CliError::other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::floor::FloorError;
    use crate::cli::Exit;

    #[test]
    fn a_floor_panic_is_a_failure_and_bad_options_a_usage_error() {
        let panicked = floor_exit(FloorError::Panicked("a receiving task"));
        assert_eq!(panicked.exit, Exit::Failure);
        assert!(
            panicked
                .source
                .to_string()
                .contains("a receiving task panicked")
        );
        let options = floor_exit(FloorError::Options("--receivers must be 1 or more".into()));
        assert_eq!(options.exit, Exit::Usage);
    }
}
