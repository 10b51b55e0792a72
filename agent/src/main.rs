//! `ion-agent`: the SFU that runs on every VM. `main` parses flags, loads the config, starts
//! logging and hands over to [`run`].

mod config;
mod report;
mod shutdown;

use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use tokio::sync::watch;

use config::{AgentConfig, Flags};
use report::{HostSampler, MediaStats, NodeIdentity, Reporter, metadata};

/// Exit code for a configuration the agent cannot start with.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let flags = Flags::parse();
    init_tracing();
    let config = match AgentConfig::load(&flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ion-agent: {error:#}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ion-agent: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ion-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let shutdown = shutdown::install()?;
    let sampler = HostSampler::new()?;
    let gce = metadata::lookup(&config.gce).await;
    let vcpus = match config.cluster.vcpus {
        0 => sampler.logical_cpus(),
        n => n,
    };
    let identity = NodeIdentity {
        id: config.cluster.node_id.clone(),
        signal_url: config.signal_url(),
        address: config.signal.public_host.clone(),
        zone: gce.zone.unwrap_or_else(|| config.cluster.zone.clone()),
        machine_type: gce
            .machine_type
            .unwrap_or_else(|| config.cluster.machine_type.clone()),
        vcpus,
        capacity: vcpus.saturating_mul(config.cluster.units_per_vcpu),
        labels: config.cluster.labels.clone(),
        started_at: SystemTime::now(),
    };
    tracing::info!(
        node = %identity.id,
        zone = %identity.zone,
        machine_type = %identity.machine_type,
        vcpus,
        capacity = identity.capacity,
        etcd = %config.etcd.endpoints.join(","),
        "starting"
    );
    // The media path (a later issue) owns the sender and publishes its counters here.
    let (_media_tx, media_rx) = watch::channel(MediaStats::default());
    Reporter::new(&config, identity, sampler, media_rx, shutdown)
        .run()
        .await;
    Ok(())
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("ION_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
