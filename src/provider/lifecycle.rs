//! The life of an instance, written once: spawn (record `instances/<name>` as `creating`, ask
//! the provider, record `booting` with its zone, or forget it when nothing was created),
//! register (the agent's node appeared: `ready`), notes on why its demands still wait, drain (through the store's node-exists
//! transaction), and delete (record `deleting`, ask the provider, remove the drain request and
//! the record). `ionctl spawn`, `ionctl delete` and the autoscaler all go through here; what
//! they print or wait for around it is theirs.

use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;

use super::{InstanceSpec, Progress, Provider, ProviderError};
use crate::model::{DrainRequest, InstanceRecord, InstanceState, NodeRecord};
use crate::store::{Store, StoreError};

/// What a step of the lifecycle did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The machine exists and boots; its record says `booting`.
    Spawned(InstanceRecord),
    /// `drain/<node>` is written.
    Drained { node: String },
    /// The machine is gone, and so are its record and drain request.
    Deleted { instance: String },
}

impl Outcome {
    /// The instance or node the step acted on.
    pub fn name(&self) -> &str {
        match self {
            Outcome::Spawned(record) => &record.name,
            Outcome::Drained { node } => node,
            Outcome::Deleted { instance } => instance,
        }
    }
}

/// Why a step of the lifecycle failed.
#[derive(Debug, Error)]
pub enum LifecycleError {
    #[error("cannot create instance {name}")]
    Create {
        name: String,
        #[source]
        source: ProviderError,
    },
    #[error("cannot delete instance {name}")]
    Delete {
        name: String,
        #[source]
        source: ProviderError,
    },
    #[error("cannot record instance {name} in etcd")]
    Record {
        name: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot drain node {node}")]
    Drain {
        node: String,
        #[source]
        source: StoreError,
    },
}

/// Writes `instances/<name>`: every change of an instance record goes through here.
async fn write(store: &Store, record: &InstanceRecord) -> Result<(), LifecycleError> {
    store
        .put(&store.keys().instance(&record.name), record)
        .await
        .map(|_| ())
        .map_err(|source| LifecycleError::Record {
            name: record.name.clone(),
            source,
        })
}

/// Creates the machine of `spec` and records it: `creating` before the provider is asked,
/// `booting` with its zone once it exists. When the provider fails nothing was created, and
/// the record goes too. `demands` are the pending demands it is spawned for (autoscaler).
pub async fn spawn(
    store: &Store,
    provider: &dyn Provider,
    spec: &InstanceSpec,
    demands: Vec<String>,
    progress: &Progress,
) -> Result<Outcome, LifecycleError> {
    let name = spec.name.clone();
    let mut record = InstanceRecord {
        name: name.clone(),
        provider: provider.kind().to_owned(),
        zone: spec.zone.clone().unwrap_or_default(),
        machine_type: spec.machine_type.clone(),
        hold_for: spec.hold_for.clone(),
        demands,
        state: InstanceState::Creating,
        created_at: SystemTime::now(),
        registered_at: None,
        note: None,
    };
    write(store, &record).await?;
    match provider.create(spec, progress).await {
        Ok(instance) => {
            record.zone = instance.zone;
            record.state = InstanceState::Booting;
            write(store, &record).await?;
            Ok(Outcome::Spawned(record))
        }
        Err(source) => {
            // Nothing was created: the record would only count as in flight.
            if let Err(error) = store.delete(&store.keys().instance(&name)).await {
                tracing::warn!(%error, instance = %name, "cannot remove the instance record");
            }
            Err(LifecycleError::Create { name, source })
        }
    }
}

/// The instance's agent registered: its record goes to `ready`, stamped `now`.
pub async fn registered(
    store: &Store,
    mut record: InstanceRecord,
    now: SystemTime,
) -> Result<InstanceRecord, LifecycleError> {
    record.state = InstanceState::Ready;
    record.registered_at = Some(now);
    write(store, &record).await?;
    Ok(record)
}

/// Why a demand the instance was spawned for still waits (`None` once none does), as the
/// autoscaler sees it; `ionctl top` and `ionctl instances` show it.
pub async fn noted(
    store: &Store,
    mut record: InstanceRecord,
    note: Option<String>,
) -> Result<InstanceRecord, LifecycleError> {
    record.note = note;
    write(store, &record).await?;
    Ok(record)
}

/// The instance is on its way out: its record says `deleting`, so nothing counts it as
/// capacity any more, and a delete cut short is finished later by the autoscaler.
pub async fn deleting(
    store: &Store,
    mut record: InstanceRecord,
) -> Result<InstanceRecord, LifecycleError> {
    record.state = InstanceState::Deleting;
    write(store, &record).await?;
    Ok(record)
}

/// Writes `drain/<node>` through the store's transaction, which refuses a node that is not
/// registered.
pub async fn drain(
    store: &Store,
    node: &str,
    request: &DrainRequest,
) -> Result<Outcome, LifecycleError> {
    store
        .drain(node, request)
        .await
        .map_err(|source| LifecycleError::Drain {
            node: node.to_owned(),
            source,
        })?;
    Ok(Outcome::Drained {
        node: node.to_owned(),
    })
}

/// How long [`delete`] waits for the node's key to leave etcd once its machine is gone: the
/// agent revokes its lease when it stops, and a killed one's lease expires within its TTL.
const NODE_GONE_WAIT: Duration = Duration::from_secs(20);

/// Marks the instance `deleting` (when it has a record), deletes the machine in `zone`, waits
/// for its node to leave etcd, then removes its drain request and its record. Until the node
/// has left, the drain request keeps placement off it. A failed provider delete leaves the
/// record `deleting`, so the autoscaler finishes it later.
pub async fn delete(
    store: &Store,
    provider: &dyn Provider,
    name: &str,
    zone: &str,
    record: Option<InstanceRecord>,
    progress: &Progress,
) -> Result<Outcome, LifecycleError> {
    let keys = store.keys();
    let record_error = |source| LifecycleError::Record {
        name: name.to_owned(),
        source,
    };
    if let Some(record) = record
        && record.state != InstanceState::Deleting
    {
        deleting(store, record).await?;
    }
    provider
        .delete(name, zone, progress)
        .await
        .map_err(|source| LifecycleError::Delete {
            name: name.to_owned(),
            source,
        })?;
    let deadline = Instant::now() + NODE_GONE_WAIT;
    while store
        .get::<NodeRecord>(&keys.node(name))
        .await
        .map_err(record_error)?
        .is_some()
    {
        if Instant::now() >= deadline {
            tracing::warn!(node = %name, "the node key is still there; it expires with its lease");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    forget(store, name).await?;
    Ok(Outcome::Deleted {
        instance: name.to_owned(),
    })
}

/// Removes the drain request and the record of an instance whose machine is gone.
pub async fn forget(store: &Store, name: &str) -> Result<(), LifecycleError> {
    let keys = store.keys();
    let record_error = |source| LifecycleError::Record {
        name: name.to_owned(),
        source,
    };
    // The store's undrain: a node that is gone with its machine and had no drain request
    // answers "unknown node", which here only means there was nothing to lift.
    match store.undrain(name).await {
        Ok(_) | Err(StoreError::UnknownNode { .. }) => {}
        Err(source) => return Err(record_error(source)),
    }
    store
        .delete(&keys.instance(name))
        .await
        .map_err(record_error)?;
    Ok(())
}
