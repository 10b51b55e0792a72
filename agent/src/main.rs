//! `ion-agent`: the SFU that runs on every VM. `main` parses flags, loads the config, starts
//! logging and hands over to [`run`].

mod config;
mod crypto;
mod drain;
mod hold;
mod metrics;
mod ownership;
mod recorder;
mod registration;
mod relay;
mod sfu;
mod shutdown;
mod signaling;

#[cfg(test)]
mod fuzz_tests;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::Parser;
use tokio::sync::watch;

use config::{AgentConfig, Flags};
use registration::{HostSampler, NodeIdentity, Reporter, ReporterLinks, metadata};
use sfu::{MediaCounters, MediaSampler, Sfu};

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

async fn run(mut config: AgentConfig) -> anyhow::Result<()> {
    let signalled = shutdown::install()?;
    // `stop` ends every task; it flips once a stop request has drained the node.
    let (stop_tx, shutdown) = watch::channel(false);
    // str0m's DTLS and SRTP use aws-lc-rs; HMAC-SHA1 keeps its keys set up.
    crypto::provider().install_process_default();
    let sampler = HostSampler::new()?;
    let listener = tokio::net::TcpListener::bind(config.signal.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for signaling; pick another [signal] listen / --listen",
                config.signal.listen
            )
        })?;
    // With port 0 the kernel picked one; the published URL must carry it.
    config.signal.listen = listener.local_addr()?;
    let workers = match config.webrtc.workers {
        0 => sampler.logical_cpus() as usize,
        n => n,
    };
    let counters = MediaCounters::new(workers);
    let sfu = Sfu::start(
        &config.webrtc,
        &config.candidate_ips(),
        &counters,
        workers,
        shutdown.clone(),
    )?;
    let gce = metadata::lookup(&config.gce).await;
    let vcpus = match config.cluster.vcpus {
        0 => sampler.logical_cpus(),
        n => n,
    };
    let identity = NodeIdentity {
        id: config.cluster.node_id.clone(),
        signal_url: config.signal_url(),
        // Where media goes: nat1to1, the STUN-discovered address, or the bind address.
        address: sfu
            .public_ip()
            .map_or_else(|| config.signal.public_host.clone(), |ip| ip.to_string()),
        zone: gce.zone.unwrap_or_else(|| config.cluster.zone.clone()),
        machine_type: gce
            .machine_type
            .unwrap_or_else(|| config.cluster.machine_type.clone()),
        vcpus,
        capacity: vcpus.saturating_mul(config.cluster.units_per_vcpu),
        labels: config.cluster.labels.clone(),
        started_at: SystemTime::now(),
        shared_host: config.cluster.shared_host,
    };
    tracing::info!(
        node = %identity.id,
        zone = %identity.zone,
        machine_type = %identity.machine_type,
        vcpus,
        capacity = identity.capacity,
        signal = %identity.signal_url,
        media = ?sfu.media_addrs(),
        etcd = %config.etcd.endpoints.join(","),
        "starting"
    );
    let (drain_tx, drain_rx) = watch::channel(drain::DrainState::default());
    let (stop_request_tx, stop_request_rx) = watch::channel(false);
    let gce_config = config.gce.clone();
    tokio::spawn(async move {
        let mut signalled = signalled;
        tokio::select! {
            _ = signalled.wait_for(|s| *s) => {}
            () = metadata::preempted(&gce_config) => {}
        }
        let _ = stop_request_tx.send(true);
    });
    tokio::spawn(drain::follow_drain_key(
        config.etcd.clone(),
        config.cluster.node_id.clone(),
        drain_tx.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(drain::stop_when_empty(
        stop_request_rx,
        drain_tx,
        counters.clone(),
        config.cluster.shutdown_grace,
        stop_tx,
    ));
    let (hold_tx, hold_rx) = hold::start(&config.cluster.hold_for, config.cluster.hold_ttl);
    let (lease_tx, lease_rx) = watch::channel(None);
    let (reclaimed_tx, reclaimed_rx) = watch::channel(None);
    let ownership = ownership::Ownership::start(
        config.etcd.clone(),
        config.cluster.node_id.clone(),
        config.signal.allow_unplaced,
        ownership::OwnershipLinks {
            lease: lease_rx,
            reclaimed: reclaimed_tx,
            drain: drain_rx.clone(),
            hold: hold_tx,
        },
        sfu.clone(),
    );
    let relay_secret = config.relay_secret();
    let (problem_tx, problem_rx) = watch::channel(None);
    tokio::spawn(recorder::follow(
        recorder::RecorderContext {
            etcd: config.etcd.clone(),
            node_id: config.cluster.node_id.clone(),
            secret: relay_secret.clone(),
            dir: config.recorder.dir.clone(),
            bind_ip: config.webrtc.bind,
            media_ip: config
                .candidate_ips()
                .first()
                .copied()
                .unwrap_or(config.webrtc.bind),
            ownership: ownership.clone(),
            problem: problem_tx,
            upload: recorder::UploadSettings {
                base_url: config.recorder.storage_url.clone(),
                auth: config.recorder.upload_auth()?,
            },
        },
        shutdown.clone(),
    ));
    let edges = relay::edge::Edges::new(
        sfu.clone(),
        config.cluster.node_id.clone(),
        relay_secret.clone(),
        config.etcd.clone(),
    );
    let context = Arc::new(signaling::SignalContext {
        sfu,
        ownership,
        edges,
        relay_secret,
        config: config.signal.clone(),
        metrics: metrics::Metrics::install(counters.clone())?,
        node_id: config.cluster.node_id.clone(),
        join_secret: config.join_secret(),
        connections: ion_cluster::gateway::ConnectionLimits::new(ion_cluster::gateway::Limits {
            total: config.signal.max_connections,
            per_ip: config.signal.max_connections_per_ip,
        }),
    });
    let tls = match (&config.signal.tls_cert, &config.signal.tls_key) {
        (Some(cert), Some(key)) => Some(
            ion_cluster::tls::load_and_watch(cert.clone(), key.clone())
                .await
                .context("[signal] tls_cert, tls_key")?,
        ),
        _ => None,
    };
    let server = tokio::spawn(signaling::serve(listener, context, tls, shutdown.clone()));
    Reporter::new(
        &config,
        identity,
        sampler,
        ReporterLinks {
            media: MediaSampler::new(counters),
            shutdown,
            lease_out: lease_tx,
            reclaimed: reclaimed_rx,
            drain: drain_rx,
            hold: hold_rx,
            problem: problem_rx,
        },
    )
    .run()
    .await;
    match server.await {
        Ok(result) => result,
        Err(error) => Err(anyhow::anyhow!("the signaling server panicked: {error}")),
    }
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
