//! `ionctl`: argument parsing (clap derive), dispatch to one file per command, and the mapping
//! of failures to documented exit codes.

mod autoscale;
mod bench;
mod completions;
mod context;
mod delete;
mod drain;
mod exit;
mod instances;
mod loadtest;
mod nodes;
mod output;
mod place;
mod progress;
mod providers;
mod record;
mod serve;
mod sessions;
mod simulate;
mod spawn;
mod token;
mod top;
mod values;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use context::{Context, GlobalArgs};
pub use exit::{CliError, EXIT_CODES_HELP, Exit};
pub use output::{OutputArgs, OutputFormat};

/// Run a fleet of WebRTC SFU servers as one cluster.
#[derive(Debug, Parser)]
#[command(name = "ionctl", version, about, after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the cluster's nodes with their state, size and load.
    Nodes(nodes::NodesArgs),
    /// List sessions and the nodes that carry them.
    Sessions(sessions::SessionsArgs),
    /// Place a session: pick a node, reserve it, print the node, signal URL and a join token.
    Place(place::PlaceArgs),
    /// Serve placement and cluster reads over HTTP for web front ends.
    Serve(serve::ServeArgs),
    /// Benchmarks: `bench place` measures placements/s against raw etcd txn/s.
    Bench(bench::BenchArgs),
    /// Live dashboard: nodes, load, sessions, drains and events, updated from etcd watches.
    Top(top::TopArgs),
    /// Ask nodes to take no new sessions; their sessions continue (writes drain/<node>).
    Drain(drain::DrainArgs),
    /// Return drained nodes to ready (deletes drain/<node>).
    Undrain(drain::UndrainArgs),
    /// Create an instance (GCE VM or local agent process) that joins the cluster.
    Spawn(spawn::SpawnArgs),
    /// List the instances created by spawn (or the autoscaler) and their nodes.
    Instances(instances::InstancesArgs),
    /// Drain an instance's node, then delete the instance.
    Delete(delete::DeleteArgs),
    /// Leader-elected controller: spawns held and shared instances for pending demand, keeps a
    /// warm pool, drains and deletes idle nodes.
    Autoscale(autoscale::AutoscaleArgs),
    /// Load-test an agent with webrtc-rs participants: loss, latency and the agent's CPU per
    /// forwarded packet; --calibrate measures units_per_vcpu.
    Loadtest(loadtest::LoadtestArgs),
    /// Record sessions: `record start SID`, `record stop SID`, `record list`.
    Record(record::RecordArgs),
    /// Client tokens for the gateway (`serve`'s /ws): `token issue --session S`.
    Token(token::TokenArgs),
    /// Write shell completion scripts (bash, zsh, fish).
    Completions(completions::CompletionsArgs),
    /// Replay a day of sessions through our placement and autoscaler and the anchors'
    /// policies (LiveKit, Jitsi, GCE MIG, the seed): cost, waits, overload.
    Simulate(simulate::SimulateArgs),
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    crate::compute::install_crypto_provider();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", exit::one_line(&error.source));
            error.exit.into()
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    // The load test's hundreds of PeerConnections want every core; the other commands one.
    let mut builder = if matches!(cli.command, Command::Loadtest(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| CliError::other(anyhow::Error::new(e).context("cannot start the runtime")))?;
    runtime.block_on(async {
        match cli.command {
            Command::Nodes(args) => nodes::run(&Context::resolve(&cli.global)?, args).await,
            Command::Sessions(args) => sessions::run(&Context::resolve(&cli.global)?, args).await,
            Command::Place(args) => place::run(&Context::resolve(&cli.global)?, args).await,
            Command::Serve(args) => serve::run(&Context::resolve(&cli.global)?, args).await,
            Command::Bench(args) => bench::run_bench(&Context::resolve(&cli.global)?, args).await,
            Command::Top(args) => top::run(&Context::resolve(&cli.global)?, args).await,
            Command::Drain(args) => drain::run(&Context::resolve(&cli.global)?, args).await,
            Command::Undrain(args) => {
                drain::run_undrain(&Context::resolve(&cli.global)?, args).await
            }
            Command::Spawn(args) => spawn::run(&Context::resolve(&cli.global)?, args).await,
            Command::Instances(args) => instances::run(&Context::resolve(&cli.global)?, args).await,
            Command::Delete(args) => delete::run(&Context::resolve(&cli.global)?, args).await,
            Command::Autoscale(args) => autoscale::run(&Context::resolve(&cli.global)?, args).await,
            Command::Loadtest(args) => loadtest::run(&cli.global, args).await,
            Command::Record(args) => record::run(&Context::resolve(&cli.global)?, args).await,
            Command::Token(args) => token::run(&Context::resolve(&cli.global)?, args),
            Command::Completions(args) => completions::run(args),
            Command::Simulate(args) => simulate::run(args),
        }
    })
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    // webrtc-rs (the `rtc*` crates) warns about routine moments of a connection's set-up,
    // hundreds of times in a load test; only its errors are shown unless IONCTL_LOG says so.
    let filter = EnvFilter::try_from_env("IONCTL_LOG").unwrap_or_else(|_| {
        EnvFilter::new(
            "warn,rtc=error,rtc_dtls=error,rtc_ice=error,rtc_sctp=error,rtc_srtp=error,\
             rtc_interceptor=error,rtc_datachannel=error,webrtc=error",
        )
    });
    // Logs go to stderr so that stdout stays clean for `-o json | jq`.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The clap definition, for completions and tests.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
