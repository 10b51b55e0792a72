//! `ionctl delete`: drains an instance's node (unless `--force`), waits until it carries no
//! session, then deletes the machine and its records through the instance lifecycle
//! ([`crate::provider::lifecycle`]).

use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use clap::Args;

use super::drain::wait_until_empty;
use super::progress::Painter;
use super::providers::{self, ProviderFlags, ProviderKind};
use super::{CliError, Context, Exit};
use crate::model::{DrainRequest, InstanceRecord};
use crate::provider::lifecycle::{self, LifecycleError};
use crate::provider::{Progress, ProviderEvent};
use crate::store::{Store, StoreError};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The instance, as `ionctl instances` names it.
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
    /// Delete at once, without draining: sessions on the node end abruptly.
    #[arg(long)]
    pub force: bool,
    /// How long to wait for the node's sessions to end before giving up (exit 5).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Delete a machine that has no `instances/` record (e.g. after a crashed spawn), with
    /// this provider.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderKind>,
    /// The zone of such a machine (GCE).
    #[arg(long, value_name = "ZONE", requires = "provider")]
    pub zone: Option<String>,
    #[command(flatten)]
    pub provider_flags: ProviderFlags,
}

pub async fn run(context: &Context, args: DeleteArgs) -> Result<(), CliError> {
    let store = context.store().await?;
    let keys = store.keys().clone();
    let name = args.instance.clone();
    let key = keys.instance(&name);
    let recorded = store.get::<InstanceRecord>(&key).await?;
    let (kind, zone) = match (&recorded, args.provider) {
        (Some(record), _) => {
            let kind = ProviderKind::parse_recorded(&record.provider).ok_or_else(|| {
                CliError::other(anyhow!(
                    "instance {name} was created by provider {:?}, which this ionctl does not know",
                    record.provider
                ))
            })?;
            (kind, record.zone.clone())
        }
        (None, Some(kind)) => (
            kind,
            args.zone.clone().unwrap_or_else(|| "local".to_owned()),
        ),
        (None, None) => {
            return Err(CliError::new(
                Exit::UnknownNode,
                anyhow!(
                    "no instance {name} is recorded under {}; `ionctl instances` lists them \
                     (add --provider to delete a machine without a record)",
                    keys.prefix()
                ),
            ));
        }
    };
    let provider = providers::build(kind, context, &args.provider_flags, None)?;
    let recorded = match recorded {
        Some(record) => Some(lifecycle::deleting(&store, record).await?),
        None => None,
    };

    let mut painter = Painter::new();
    if !args.force {
        drain(&store, &name, args.timeout, &mut painter).await?;
    }
    let (progress, mut events) = Progress::channel();
    let delete = lifecycle::delete(&store, provider.as_ref(), &name, &zone, recorded, &progress);
    tokio::pin!(delete);
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    let result = loop {
        tokio::select! {
            result = &mut delete => break result,
            Some(event) = events.recv() => {
                if let ProviderEvent::Operation { operation, status, .. } = &event {
                    painter.note(&format!("operation {operation}: {status}"));
                }
            }
            _ = ticker.tick() => painter.waiting(&format!("deleting {name}")),
        }
    };
    result?;
    painter.step(
        "deleted",
        &format!(
            "{name} ({} in zone {zone}); instances/{name} and drain/{name} removed",
            provider.kind()
        ),
    );
    Ok(())
}

/// Writes `drain/<name>` and waits until the node carries no session (by its stats and by
/// the session records placed on it), or the timeout passes (exit 5, the drain stays).
async fn drain(
    store: &Store,
    name: &str,
    timeout: Duration,
    painter: &mut Painter,
) -> Result<(), CliError> {
    let now = SystemTime::now();
    let request = DrainRequest {
        requested_at: now,
        deadline: Some(now + timeout),
        reason: Some("ionctl delete".to_owned()),
    };
    match lifecycle::drain(store, name, &request).await {
        Ok(_) => {}
        // A machine whose agent never registered (or is gone) has nothing to drain.
        Err(LifecycleError::Drain {
            source: StoreError::UnknownNode { .. },
            ..
        }) => {
            painter.note(&format!("node {name} is not registered; nothing to drain"));
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    }
    painter.step("draining", &format!("{name}: no new sessions"));
    wait_until_empty(store, &[name.to_owned()], timeout, painter)
        .await
        .map_err(|mut error| {
            if error.exit == Exit::DrainTimeout {
                error.source = error.source.context(format!(
                    "instance {name} was not deleted; delete it anyway with --force"
                ));
            }
            error
        })
}
