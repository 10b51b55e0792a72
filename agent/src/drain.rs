//! Draining. A node drains when an operator writes `drain/<node>` (`ionctl drain`), or when it
//! is asked to stop (SIGTERM, a GCE preemption notice). A draining node refuses new sessions
//! but keeps serving the ones it has, and they may still take participants, as in jitsi and
//! LiveKit. Deleting the drain key makes the node ready again. A stop request ends the agent
//! once no session is left, or after `shutdown_grace`.

use std::time::Duration;

use ion_cluster::backoff::Backoff;
use ion_cluster::model::DrainRequest;
use ion_cluster::store::{Change, EtcdOptions, Store, StoreError};
use tokio::sync::watch;

use crate::sfu::MediaCounters;

/// Why the node drains, if it does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainState {
    /// `drain/<node>` exists.
    pub requested: bool,
    /// The agent was asked to stop and leaves when empty.
    pub stopping: bool,
}

impl DrainState {
    pub fn draining(&self) -> bool {
        self.requested || self.stopping
    }
}

/// Follows `drain/<node_id>` in etcd and mirrors it into `state`, reconnecting with backoff.
pub async fn follow_drain_key(
    etcd: EtcdOptions,
    node_id: String,
    state: watch::Sender<DrainState>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(4));
    loop {
        let result = tokio::select! {
            result = follow_once(&etcd, &node_id, &state) => result,
            _ = stop.wait_for(|s| *s) => return,
        };
        let delay = backoff.next_delay();
        if let Err(error) = result {
            tracing::warn!(%error, retry_in = ?delay, "lost the drain watch; watching again");
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn follow_once(
    etcd: &EtcdOptions,
    node_id: &str,
    state: &watch::Sender<DrainState>,
) -> Result<(), StoreError> {
    let store = Store::connect(etcd).await?;
    let collection = store.keys().drains();
    let listed = store.list::<DrainRequest>(&collection, None).await?;
    set_requested(state, listed.items.iter().any(|(id, _)| id == node_id));
    let mut watch = store
        .watch::<DrainRequest>(&collection, listed.revision)
        .await?;
    loop {
        for change in watch.next().await? {
            match change {
                Change::Put { id, .. } | Change::Malformed { id, .. } if id == node_id => {
                    set_requested(state, true);
                }
                Change::Deleted { id, .. } if id == node_id => set_requested(state, false),
                _ => {}
            }
        }
    }
}

fn set_requested(state: &watch::Sender<DrainState>, requested: bool) {
    state.send_if_modified(|s| {
        if s.requested == requested {
            return false;
        }
        s.requested = requested;
        if requested {
            tracing::info!("drain requested: refusing new sessions");
        } else {
            tracing::info!("drain lifted: ready for new sessions");
        }
        true
    });
}

/// Waits for a stop request (`stop_requested` flips), drains, and flips `stop` once the node
/// has no session left or `grace` has passed.
pub async fn stop_when_empty(
    mut stop_requested: watch::Receiver<bool>,
    state: watch::Sender<DrainState>,
    counters: MediaCounters,
    grace: Duration,
    stop: watch::Sender<bool>,
) {
    if stop_requested.wait_for(|s| *s).await.is_err() {
        return;
    }
    state.send_modify(|s| s.stopping = true);
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let sessions = counters.totals().sessions;
        if sessions == 0 {
            tracing::info!("no sessions left; stopping");
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(sessions, grace = ?grace, "shutdown grace is over; stopping with sessions left");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = stop.send(true);
}
