//! `ionctl spawn`: creates one instance through a provider, records it under
//! `instances/<name>` (creating → booting → ready), and with `--wait` follows it until its
//! agent registers as a node of the same name.

use std::time::{Duration, Instant, SystemTime};

use anyhow::anyhow;
use clap::Args;

use super::instances::{InstanceView, NodeSummary, state_name};
use super::output::{OutputArgs, OutputFormat, print_json, print_table, table};
use super::progress::Painter;
use super::providers::{self, CreateFlags, ProviderFlags, ProviderKind};
use super::{CliError, Context};
use crate::model::keys::validate_id;
use crate::model::{InstanceRecord, NodeRecord};
use crate::provider::lifecycle::{self, LifecycleError, Outcome};
use crate::provider::{
    AgentBootstrap, InstanceSpec, Progress, Provider, ProviderEvent, generate_name, validate_name,
};

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// Machine type, e.g. n2-highcpu-4.
    #[arg(long, value_name = "TYPE")]
    pub machine_type: String,
    /// Hold the new node for this session: no other session is placed on it until this one
    /// goes live there or the hold expires.
    #[arg(long, value_name = "SID")]
    pub hold: Option<String>,
    /// How long the hold lasts at most [default: the agent's, 5m].
    #[arg(long, value_name = "DURATION", requires = "hold", value_parser = humantime::parse_duration)]
    pub hold_ttl: Option<Duration>,
    /// Where to create the instance.
    #[arg(long, value_enum, env = "IONCTL_PROVIDER", default_value_t = ProviderKind::Gce)]
    pub provider: ProviderKind,
    /// Create in this zone only, instead of trying the configured zones in order.
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
    /// Instance (and node) name [default: ion-<machine type>-<6 random characters>].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Wait until the instance's agent has registered in etcd, showing progress.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits for the agent to register.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub provider_flags: ProviderFlags,
    #[command(flatten)]
    pub create_flags: CreateFlags,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn describe(event: &ProviderEvent) -> String {
    match event {
        ProviderEvent::Requested { name, zone } => format!("{name} in zone {zone}"),
        ProviderEvent::Operation {
            operation, status, ..
        } => format!("operation {operation}: {status}"),
        ProviderEvent::ZoneUnavailable { zone, reason, .. } => {
            format!("zone {zone} cannot take it ({reason}); trying the next zone")
        }
        ProviderEvent::Booting { name, zone } => format!("{name} in zone {zone}"),
        ProviderEvent::Deleting { name, zone } => format!("deleting {name} in zone {zone}"),
    }
}

pub async fn run(context: &Context, args: SpawnArgs) -> Result<(), CliError> {
    if let Some(sid) = &args.hold {
        validate_id("session", sid).map_err(CliError::usage)?;
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| generate_name(&args.machine_type));
    validate_name(&name).map_err(CliError::usage)?;
    let provider = providers::build(
        args.provider,
        context,
        &args.provider_flags,
        Some(&args.create_flags),
    )?;
    let store = context.store().await?;
    let keys = store.keys().clone();
    let key = keys.instance(&name);
    if store.get::<InstanceRecord>(&key).await?.is_some() {
        return Err(CliError::usage(anyhow!(
            "instance {name} is already recorded under {}; pick another --name",
            keys.prefix()
        )));
    }
    let spec = InstanceSpec {
        name: name.clone(),
        machine_type: args.machine_type.clone(),
        zone: args.zone.clone(),
        labels: Default::default(),
        hold_for: args.hold.clone(),
        agent: AgentBootstrap {
            etcd_endpoints: store.endpoints().to_vec(),
            prefix: keys.prefix().to_owned(),
            units_per_vcpu: None,
            hold_ttl: args.hold_ttl,
        },
    };

    let mut painter = Painter::new();
    painter.step(
        "requested",
        &format!(
            "{name}: {} on {}{}",
            args.machine_type,
            provider.kind(),
            args.hold
                .as_ref()
                .map(|sid| format!(", held for session {sid}"))
                .unwrap_or_default()
        ),
    );
    let created = create(&store, provider.as_ref(), &spec, &mut painter).await;
    let Outcome::Spawned(mut record) = created? else {
        unreachable!("a spawn answers Spawned");
    };

    let mut node = None;
    if args.wait {
        let registered = wait_registered(
            &store,
            provider.as_ref(),
            &record,
            args.timeout,
            &mut painter,
        )
        .await?;
        record = lifecycle::registered(&store, record, SystemTime::now()).await?;
        painter.step(
            "registered",
            &format!(
                "node {name}: {} vCPUs, capacity {} units, {}",
                registered.vcpus, registered.capacity, registered.signal_url
            ),
        );
        node = Some(NodeSummary::from(&registered));
    }
    painter.finish();
    let view = InstanceView { record, node };
    match args.output.output {
        OutputFormat::Json => print_json(&view),
        OutputFormat::Table => {
            let mut out = table(&["name", "provider", "zone", "machine type", "state", "hold"]);
            out.add_row(vec![
                view.record.name.clone(),
                view.record.provider.clone(),
                view.record.zone.clone(),
                view.record.machine_type.clone(),
                state_name(view.record.state).to_owned(),
                view.record
                    .hold_for
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
            ]);
            print_table(&mut out)
        }
    }
}

/// Runs the provider's create while drawing its events.
/// Spawns through the lifecycle while drawing the provider's events.
async fn create(
    store: &crate::store::Store,
    provider: &dyn Provider,
    spec: &InstanceSpec,
    painter: &mut Painter,
) -> Result<Outcome, LifecycleError> {
    let (progress, mut events) = Progress::channel();
    let create = lifecycle::spawn(store, provider, spec, Vec::new(), &progress);
    tokio::pin!(create);
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    let result = loop {
        tokio::select! {
            result = &mut create => break result,
            Some(event) = events.recv() => show(painter, &event),
            _ = ticker.tick() => painter.waiting(&format!("creating {}", spec.name)),
        }
    };
    while let Ok(event) = events.try_recv() {
        show(painter, &event);
    }
    result
}

fn show(painter: &mut Painter, event: &ProviderEvent) {
    match event {
        ProviderEvent::Booting { .. } => painter.step("booting", &describe(event)),
        ProviderEvent::Requested { .. } => painter.step("accepted", &describe(event)),
        _ => painter.note(&describe(event)),
    }
}

/// Polls `nodes/<name>` until the agent registers, checking now and then that the machine
/// still runs, so a crashed agent ends the wait with a reason instead of a timeout.
async fn wait_registered(
    store: &crate::store::Store,
    provider: &dyn Provider,
    record: &InstanceRecord,
    timeout: Duration,
    painter: &mut Painter,
) -> Result<NodeRecord, CliError> {
    let node_key = store.keys().node(&record.name);
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_check = Instant::now();
    loop {
        if let Some(node) = store.get::<NodeRecord>(&node_key).await? {
            return Ok(node);
        }
        if last_check.elapsed() >= Duration::from_secs(2) {
            last_check = Instant::now();
            match provider.get(&record.name, &record.zone).await {
                Ok(Some(instance)) if instance.status.is_finished() => {
                    return Err(CliError::other(anyhow!(
                        "instance {} is {} before its agent registered{}",
                        record.name,
                        instance.status,
                        hint(record)
                    )));
                }
                Ok(None) => {
                    return Err(CliError::other(anyhow!(
                        "instance {} disappeared before its agent registered{}",
                        record.name,
                        hint(record)
                    )));
                }
                Ok(Some(_)) => {}
                Err(error) => tracing::warn!(%error, "cannot check the instance; still waiting"),
            }
        }
        if Instant::now() >= deadline {
            return Err(CliError::other(anyhow!(
                "the agent of {} did not register within {}; the instance stays (state booting). \
                 Look at it, or remove it with `ionctl delete {} --force`",
                record.name,
                humantime::format_duration(timeout),
                record.name
            )));
        }
        painter.waiting(&format!(
            "waiting for node {} to register in etcd",
            record.name
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn hint(record: &InstanceRecord) -> String {
    if record.provider == "local" {
        format!("; see its log, {}.log in the local state dir", record.name)
    } else {
        "; see its serial console output".to_owned()
    }
}
