//! The dashboard's data feed: list every collection once at one revision, then watch them
//! from that revision on. A watch that breaks (etcd restarting, the connection lost) is
//! resumed from the last revision it delivered; only a compaction past that revision makes it
//! list again. While etcd is unreachable it reports that and keeps retrying with backoff.
//! Everything it learns goes into the dashboard's one event channel.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::app::{Delta, Listing};
use super::event::Event;
use crate::backoff::Backoff;
use crate::model::{
    DrainRequest, InstanceRecord, NodeRecord, PendingDemand, RecordingRecord, SessionRecord,
};
use crate::store::{Change, EtcdOptions, Listed, Store, StoreError, Watch};

const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// A watch that lived this long counts as healthy: the next failure retries quickly again.
const HEALTHY: Duration = Duration::from_secs(10);

/// Runs until the receiver of `events` is dropped. `store` is set once etcd answered, for
/// the commands the operator issues.
pub async fn run(
    options: EtcdOptions,
    events: mpsc::Sender<Event>,
    store: watch::Sender<Option<Store>>,
) {
    let mut backoff = Backoff::new(FIRST_RETRY, MAX_RETRY);
    let connected = loop {
        match Store::connect(&options).await {
            Ok(connected) => break connected,
            Err(error) => {
                if !report_down(&events, &error).await {
                    return;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    store.send_replace(Some(connected.clone()));
    let store = connected;
    backoff.reset();
    'list: loop {
        let listing = match list(&store).await {
            Ok(listing) => listing,
            Err(error) => {
                if !report_down(&events, &error).await {
                    return;
                }
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let revision = listing.revision;
        if events
            .send(Event::Listing(Box::new(listing)))
            .await
            .is_err()
        {
            return;
        }
        let mut watches = match Watches::open(&store, revision).await {
            Ok(watches) => watches,
            Err(error) => {
                tracing::debug!(%error, "cannot watch; listing again");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        loop {
            let started = Instant::now();
            let error = loop {
                match watches.next().await {
                    Ok(deltas) => {
                        if events.send(Event::Changes(deltas)).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => break error,
                }
            };
            if started.elapsed() >= HEALTHY {
                backoff.reset();
            }
            // A compaction means the events the watch missed are gone: list again at once.
            // Anything else (etcd restarting, the connection lost) resumes the watches where
            // they were, with no listing; while that fails, etcd is reported unreachable.
            if matches!(error, StoreError::Compacted { .. }) {
                tracing::debug!(%error, "watch fell behind a compaction; listing again");
                continue 'list;
            }
            tracing::debug!(%error, "watch broke; resuming");
            loop {
                tokio::time::sleep(backoff.next_delay()).await;
                match watches.resume(&store).await {
                    Ok(()) => break,
                    Err(StoreError::Compacted { .. }) => continue 'list,
                    Err(error) => {
                        if !report_down(&events, &error).await {
                            return;
                        }
                    }
                }
            }
            if events
                .send(Event::Resumed(watches.revision()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Tells the dashboard etcd cannot be reached; false once the dashboard is gone.
async fn report_down(events: &mpsc::Sender<Event>, error: &StoreError) -> bool {
    events
        .send(Event::Disconnected(error.to_string()))
        .await
        .is_ok()
}

/// Every collection at the revision of the first read.
async fn list(store: &Store) -> Result<Listing, StoreError> {
    let keys = store.keys();
    let nodes: Listed<NodeRecord> = store.list(&keys.nodes(), None).await?;
    let at = Some(nodes.revision);
    let sessions: Listed<SessionRecord> = store.list(&keys.sessions(), at).await?;
    let drains: Listed<DrainRequest> = store.list(&keys.drains(), at).await?;
    let pending: Listed<PendingDemand> = store.list(&keys.pendings(), at).await?;
    let instances: Listed<InstanceRecord> = store.list(&keys.instances(), at).await?;
    let recordings: Listed<RecordingRecord> = store.list(&keys.recordings(), at).await?;
    Ok(Listing {
        revision: nodes.revision,
        malformed: [
            nodes.malformed,
            sessions.malformed,
            drains.malformed,
            pending.malformed,
            instances.malformed,
            recordings.malformed,
        ]
        .concat(),
        nodes: nodes.items,
        sessions: sessions.items,
        drains: drains.items,
        pending: pending.items,
        instances: instances.items,
        recordings: recordings.items,
    })
}

/// The six watches, read as one stream of deltas.
struct Watches {
    nodes: Watch<NodeRecord>,
    sessions: Watch<SessionRecord>,
    drains: Watch<DrainRequest>,
    pending: Watch<PendingDemand>,
    instances: Watch<InstanceRecord>,
    recordings: Watch<RecordingRecord>,
}

impl Watches {
    /// Opens every watch again after the revision it last delivered.
    async fn resume(&mut self, store: &Store) -> Result<(), StoreError> {
        self.nodes.resume(store).await?;
        self.sessions.resume(store).await?;
        self.drains.resume(store).await?;
        self.pending.resume(store).await?;
        self.instances.resume(store).await?;
        self.recordings.resume(store).await
    }

    /// The oldest revision all watches have delivered.
    fn revision(&self) -> i64 {
        [
            self.nodes.revision(),
            self.sessions.revision(),
            self.drains.revision(),
            self.pending.revision(),
            self.instances.revision(),
            self.recordings.revision(),
        ]
        .into_iter()
        .min()
        .unwrap_or_default()
    }

    async fn open(store: &Store, revision: i64) -> Result<Self, StoreError> {
        let keys = store.keys();
        Ok(Self {
            nodes: store.watch(&keys.nodes(), revision).await?,
            sessions: store.watch(&keys.sessions(), revision).await?,
            drains: store.watch(&keys.drains(), revision).await?,
            pending: store.watch(&keys.pendings(), revision).await?,
            instances: store.watch(&keys.instances(), revision).await?,
            recordings: store.watch(&keys.recordings(), revision).await?,
        })
    }

    /// The next batch from whichever watch has one. `Watch::next` only awaits the stream's
    /// next message, so dropping the others' futures loses nothing.
    async fn next(&mut self) -> Result<Vec<Delta>, StoreError> {
        tokio::select! {
            r = map(self.nodes.next(), Delta::Node) => r,
            r = map(self.sessions.next(), Delta::Session) => r,
            r = map(self.drains.next(), Delta::Drain) => r,
            r = map(self.pending.next(), Delta::Pending) => r,
            r = map(self.instances.next(), Delta::Instance) => r,
            r = map(self.recordings.next(), Delta::Recording) => r,
        }
    }
}

async fn map<T: DeserializeOwned>(
    next: impl Future<Output = Result<Vec<Change<T>>, StoreError>>,
    wrap: fn(Change<T>) -> Delta,
) -> Result<Vec<Delta>, StoreError> {
    Ok(next.await?.into_iter().map(wrap).collect())
}
